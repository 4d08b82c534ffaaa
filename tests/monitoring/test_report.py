"""`forge drift` on the live prediction log and a shifted file; the HTML report renders in headless Chromium."""

import subprocess

import pytest

from forge.data import synthetic
from tests.conftest import require_binary, run_cli
from tests.contract import cli_json

pytestmark = pytest.mark.integration


def test_drift_cli_on_shifted_data_and_html_in_chromium(trained_project, tmp_path):
    cfg, _ = trained_project
    synthetic.generate(800, seed=50, shift=2.0, new_category=True).to_csv(tmp_path / "shifted.csv", index=False)
    html = tmp_path / "drift.html"
    r = run_cli("drift", "-c", str(cfg.config_path), "--current", str(tmp_path / "shifted.csv"), "--html", str(html),
                "--fail-on-drift", "--json")
    assert r.returncode == 3, r.stderr  # drift found and asked to fail on it
    res = cli_json(r, "drift")
    assert res["dataset_drift"] and res["features"]["usage_hours"]["drifted"] and res["features"]["region"]["drifted"]
    for f in res["features"].values():
        assert {"test", "statistic", "p_value", "threshold", "drifted"} <= set(f)
    assert res["multivariate"]["domain_classifier"]["drifted"]
    assert 0.5 <= res["performance_estimate"]["accuracy"] <= 1
    same = tmp_path / "same.csv"
    synthetic.generate(800, seed=51).to_csv(same, index=False)
    r = run_cli("drift", "-c", str(cfg.config_path), "--current", str(same), "--fail-on-drift", "--json")
    assert r.returncode == 0, r.stderr
    assert not cli_json(r, "drift")["dataset_drift"]

    chromium = require_binary("chromium")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1200,1600"]
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
