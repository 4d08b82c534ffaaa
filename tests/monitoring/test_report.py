"""`forge drift` on the live prediction log and a shifted file; the HTML report renders in headless Chromium."""

import subprocess

import pytest

from forge.data import synthetic
from forge.registry.client import Registry
from tests.conftest import cli, require_binary
from tests.contract import cli_json

pytestmark = pytest.mark.integration
# CBPE against the realised accuracy on 800 shifted rows: the binomial standard error alone is about 0.015 there,
# and the champion's probabilities are calibrated on training-like rows, not on rows shifted by two deviations.
CBPE_TOLERANCE = 0.05


def test_drift_cli_on_shifted_data_and_html_in_chromium(trained_project, tmp_path):
    cfg, _ = trained_project
    shifted = synthetic.generate(800, seed=50, shift=2.0, new_category=True)
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    html = tmp_path / "drift.html"
    r = cli("drift", "-c", str(cfg.config_path), "--current", str(tmp_path / "shifted.csv"), "--html", str(html),
                "--fail-on-drift", "--json")
    assert r.returncode == 3, r.stderr  # drift found and asked to fail on it
    res = cli_json(r, "drift")
    assert res["dataset_drift"] and res["features"]["usage_hours"]["drifted"] and res["features"]["region"]["drifted"]
    for f in res["features"].values():
        assert {"test", "statistic", "p_value", "threshold", "drifted"} <= set(f)
    assert res["multivariate"]["domain_classifier"]["drifted"]
    # CBPE estimates accuracy from the champion's probabilities alone; the rows carry their labels, so the
    # estimate is held to the champion's realised accuracy on the same rows
    estimate = res["performance_estimate"]
    labelled = shifted.dropna(subset=["churned"])
    pred, _ = Registry.of(cfg).load("champion").predict_raw(labelled)
    realised = float((pred == labelled["churned"].to_numpy()).mean())
    assert estimate["rows"] == len(shifted) and abs(estimate["accuracy"] - realised) <= CBPE_TOLERANCE, \
        (estimate, realised)
    same = tmp_path / "same.csv"
    synthetic.generate(800, seed=51).to_csv(same, index=False)
    r = cli("drift", "-c", str(cfg.config_path), "--current", str(same), "--fail-on-drift", "--json")
    assert r.returncode == 0, r.stderr
    assert not cli_json(r, "drift")["dataset_drift"]

    chromium = require_binary("chromium")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1280,1600"]
    r = subprocess.run([chromium, *flags, f"--screenshot={shot}", html.as_uri()], capture_output=True, text=True,
                       timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000, r.stderr[-1000:]
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    colors = len(set(img.resize((200, 260)).getdata()))
    assert colors > 50  # plots and tables, not a blank or error page
    dom = subprocess.run([chromium, *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert "DRIFT" in dom and dom.count("<img") >= 5
    assert "drifted features: " in dom and "usage_hours (" in dom and "<h2>Multivariate</h2>" in dom
    assert "<h2>Estimated performance (CBPE, no labels)</h2>" in dom and "{'" not in dom  # tables, not dicts
    # at 1280 px: nothing wider than the window, and nothing on the console (a script marks the page)
    probe = tmp_path / "probe.html"
    probe.write_text(html.read_text().replace("</body>", "<script>addEventListener('load', () => document.body"
                     ".setAttribute('data-overflow', document.documentElement.scrollWidth - innerWidth))</script>"
                     "</body>"))
    r = subprocess.run([chromium, *flags, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                        "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'data-overflow="0"' in r.stdout or 'data-overflow="-' in r.stdout, r.stdout[r.stdout.find("<body"):][:200]
    console = [line for line in r.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console


def _result(dataset_drift: bool, drifted: list[str], multi_drifted: bool) -> dict:
    feats = {n: {"test": "ks", "statistic": 0.3, "p_value": 0.001 if n in drifted else 0.5, "threshold": 0.05,
                 "drifted": n in drifted} for n in ("a", "b", "c")}
    return {"features": feats, "dataset_drift": dataset_drift, "drifted_features": len(drifted), "n_features": 3,
            "drift_share": len(drifted) / 3, "threshold_share": 0.5, "rows_reference": 100, "rows_current": 100,
            "multivariate": {"domain_classifier": {"test": "domain_classifier", "auc": 0.84,
                                                   "drifted": multi_drifted}}}


def test_the_headline_is_coloured_by_the_worst_finding_and_names_it():
    from forge.monitoring.report import headline

    assert headline(_result(False, [], False))[0] == "green"
    color, text = headline(_result(False, ["a"], True))  # the share rule says no, one feature and the classifier yes
    assert color == "amber" and "a (ks)" in text and "domain_classifier" in text and "no dataset drift" in text
    color, text = headline(_result(True, ["a", "b"], False))
    assert color == "red" and "a (ks), b (ks)" in text
