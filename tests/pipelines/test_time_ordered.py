"""Issue 19's whole story: `forge init` + `forge run` on a time-ordered file whose last quarter brings a new
category and whose last row a negative value: nothing quarantined, trained on every row, and the served
endpoint answers a request with the late category."""

import json

import httpx
import pandas as pd
import pytest
import yaml

from forge.registry.client import Registry
from tests.conftest import cli
from tests.data.test_profile import seasonal

pytestmark = pytest.mark.integration


def test_init_then_run_keeps_every_row_and_serves_the_late_category(served, auth_headers, tmp_path):
    from ray import serve

    from forge.config import load_config
    from forge.pipelines.pipeline import run
    from forge.serving.app import build_app

    frame = seasonal(1600)
    frame.to_csv(tmp_path / "hourly.csv", index=False)
    r = cli("init", "hourly.csv", "--target", "count", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["rows_read"] == len(frame)
    raw = yaml.safe_load((tmp_path / "forge.yaml").read_text())
    raw["training"] = {"num_samples": 1, "models": ["linear_regression"]}
    (tmp_path / "forge.yaml").write_text(yaml.safe_dump(raw))

    cfg = load_config(tmp_path / "forge.yaml")
    result = run(cfg)
    assert result["rows_quarantined"] == 0 and result["rows_valid"] == len(frame)
    split = result["split"]
    assert split["method"] == "random" and split["train"] + split["val"] + split["test"] == len(frame)
    assert "baseline_metric" in result and result["metric"]["name"] == "rmse"

    serve.run(build_app(cfg), name="hourly", route_prefix="/hourly", blocking=False)
    champion = Registry.of(cfg).load("champion")
    try:
        url = f"http://127.0.0.1:{served[0].serving.port}/hourly/v1/predict"
        late = {"month": "Dec", "hour": 3, "temp": -4.5, "season": "autumn"}
        unseen = {**late, "season": "monsoon"}  # never in the file: served, counted, not refused
        for row in (late, unseen):
            for _ in range(120):
                resp = httpx.post(url, json={"instances": [row]}, headers=auth_headers(), timeout=10)
                if resp.status_code != 404:
                    break
                import time

                time.sleep(0.5)
            assert resp.status_code == 200, resp.text
            expected, _ = champion.predict_raw(pd.DataFrame([row]))  # the unseen season: its one-hot all zeros
            assert resp.json()["predictions"] == pytest.approx(expected.tolist(), rel=0, abs=1e-9)
    finally:
        serve.delete("hourly")
