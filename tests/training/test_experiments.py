"""`forge experiments list | show [--html]`: the session's search read back from MLflow, trial by trial, and its
report rendered in headless Chromium and logged to the search's MLflow run."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli, keep_screenshot, require_binary

pytestmark = pytest.mark.integration

SHOT_HEIGHT = 1300


def _json(r) -> dict:
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_list_and_show_the_search_trial_by_trial(trained_project):
    cfg, result = trained_project
    listed = _json(cli("experiments", "list", "-c", str(cfg.config_path), "--json"))
    mine = [s for s in listed["searches"] if s["run_id"] == result["run_id"]]
    assert len(mine) == 1 and mine[0]["n_trials"] == cfg.training.num_samples, listed
    assert mine[0]["metric"] == result["metric"]["name"] and mine[0]["winner"] == result["family"]
    newest = _json(cli("experiments", "show", "-c", str(cfg.config_path), "--json"))  # no RUN: the newest
    assert newest["run_id"] == listed["searches"][0]["run_id"], (newest["run_id"], listed["searches"][:2])
    shown = _json(cli("experiments", "show", result["run_id"], "-c", str(cfg.config_path), "--json"))
    trials = shown["trials"]
    assert len(trials) == cfg.training.num_samples
    assert {t["family"] for t in trials} <= set(cfg.training.models)
    for t in trials:  # the session's search errored no trial (test_run_result_contract): none reads as errored
        assert t["status"] == "completed" or t["status"].startswith("stopped early by ASHA at epoch "), t
        assert 1 <= t["iterations"] <= cfg.training.max_epochs and t["wall_s"] is not None, t
        if t["status"].startswith("stopped"):
            assert t["family"] == "mlp" and t["iterations"] < cfg.training.max_epochs
    # TensorBoard event files, one trial folder each, under the workspace's Tune folder (not Ray's session dir)
    folder = shown["tensorboard"].removeprefix("tensorboard --logdir ")
    from forge.workspace import Workspace

    assert folder.startswith(Workspace.from_config(cfg).tune().path), folder
    events = list(__import__("pathlib").Path(folder).glob("*/events.out.tfevents.*"))
    assert len(events) >= len(trials), events
    best = shown["best_per_family"]
    assert shown["winner"] in best and set(best) == {t["family"] for t in trials if t["val_metric"] is not None}


@pytest.mark.screenshot
def test_the_html_report_renders_and_is_logged_to_the_search_run(trained_project, tmp_path):
    from forge.training import tracking

    cfg, result = trained_project
    out = tmp_path / "search.html"
    # The session's own search by id: other tests retrain this project (one on shuffled labels, to be refused
    # by the gate), and the latest search, which `show` picks without an id, would be whichever ran last.
    shown = _json(cli("experiments", "show", result["run_id"], "-c", str(cfg.config_path), "--html", str(out),
                          "--json"))
    assert shown["html_path"] == str(out) and out.exists() and shown["run_id"] == result["run_id"]
    artifacts = [a.path for a in tracking.client(cfg).list_artifacts(shown["run_id"], "reports")]
    assert f"reports/{out.name}" in artifacts, artifacts
    chromium = require_binary("chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
             "--enable-logging=stderr", "--v=0"]
    r = subprocess.run([chromium, *flags, "--window-size=1280,1600", "--dump-dom", out.as_uri()],
                       capture_output=True, text=True, timeout=120)
    dom = r.stdout
    assert "Learning curves" in dom and "Best per family" in dom and dom.count("<img") >= 2, dom[:500]
    assert dom.count("<tr") >= len(shown["trials"]) + 2  # every trial has its row
    assert not [line for line in r.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    # The README's screenshot comes from this test: `make screenshots` runs it with FORGE_SCREENSHOTS=docs and it
    # lands in docs/; `make test` keeps it in its temporary folder (no test writes into the checkout).
    shot = tmp_path / "experiment-report.png"
    subprocess.run([chromium, *flags, f"--window-size=1280,{SHOT_HEIGHT}", f"--screenshot={shot}", out.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000
    assert _png_size(shot) == (1280, SHOT_HEIGHT)
    keep_screenshot(shot)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]  # PNG signature, then IHDR: width and height as big-endian 32-bit integers
    assert head[:8] == b"\x89PNG\r\n\x1a\n", head
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
