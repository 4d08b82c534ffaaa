"""forge/pipelines/demo.py: the closed loop on small data with real Ray, MLflow and Serve.

Champion served -> shifted traffic with delayed labels -> drift and decay seen -> retraining through
the gate -> the live app swaps to the new @champion without a restart.
"""

import httpx
import pytest
from mlflow import MlflowClient

from forge.config import load_config
from forge.monitoring.labels import decayed, live_performance
from forge.pipelines.demo import loop
from forge.training import tracking
from tests.conftest import write_project

pytestmark = pytest.mark.integration


def test_loop_drift_retrain_gate_and_live_swap(served, tmp_path):
    session_cfg, url = served
    path = write_project(tmp_path / "loop", rows=3000, seed=21, name="loop",
                         training={"num_samples": 3, "max_concurrent": 2,
                                   "models": ["logistic_regression", "hist_gradient_boosting"]},
                         serving={"port": session_cfg.serving.port, "route_prefix": "/loop", "model_poll_s": 1},
                         retraining={"window_rows": 1000})
    lines: list[str] = []
    try:
        out = loop(str(path), say=lines.append, keep_serving=True)
        cfg = load_config(path)
        drift = cfg.monitoring.drift.drift_share
        assert out["drift_before"] < drift <= out["drift_after"], "\n".join(lines)
        r = out["retrain"]
        assert r["triggered"] and r["promoted"], "\n".join(lines)
        assert out["served_before"] != out["served_after"] == r["model_version"]
        # the running app answers from the new champion, without a restart
        h = {"Authorization": out["auth_header"]}
        assert httpx.get(f"{url}/loop/readyz", timeout=10).json()["version"] == r["model_version"]
        body = httpx.post(f"{url}/loop/v1/predict", json={"instances": out["sample"]}, headers=h, timeout=30).json()
        assert body["model"]["version"] == r["model_version"]

        # delayed labels gave the old champion's live metric, which decayed under the shift ...
        perf = out["live_metric"]
        assert perf["rows"] >= cfg.retraining.min_labelled and decayed(perf, cfg.retraining.performance_drop)
        assert r["reason"].startswith("performance:") and "drift: share" in r["reason"]
        # ... and the new champion starts with no labelled predictions of its own
        assert live_performance(cfg)["rows"] == 0

        # MLflow links the trigger, the drift report and both versions
        tracking.setup(cfg)
        run = MlflowClient().get_run(r["run_id"])
        assert run.data.tags["forge.retrain.challenger"] == r["model_version"]
        assert run.data.tags["forge.retrain.champion_before"] == out["served_before"]
        assert run.data.tags["forge.retrain.trigger"] == r["reason"]
        assert "forge.retrain.drift_report" in run.data.tags
    finally:
        from ray import serve

        serve.delete("loop")
        tracking.setup(session_cfg)
