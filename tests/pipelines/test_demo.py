"""forge/pipelines/demo.py: the closed loop on small data with real Ray, MLflow and Serve.

Champion served -> shifted traffic with delayed labels -> drift and decay seen -> retraining through
the gate -> the live app swaps to the new @champion without a restart.
"""

import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from forge.config import load_config
from forge.data.versioning import get_version
from forge.monitoring.labels import LivePerformance, live_performance
from forge.pipelines.demo import loop
from forge.pipelines.pipeline import train
from forge.pipelines.retrain import original_version, retrain
from forge.pipelines.schedule import run_schedule
from forge.registry.registry import alias_version
from forge.training import tracking
from forge.workspace import Workspace
from tests.conftest import write_project

pytestmark = pytest.mark.integration


def test_loop_drift_retrain_gate_and_live_swap(served, tmp_path):
    session_cfg, url = served
    path = write_project(tmp_path / "loop", rows=3000, seed=21, name="loop",
                         # one trial a search: the loop's four searches (first champion, retraining, the
                         # schedule's, the poisoned one) are each about what the gate and the app do with it
                         training={"num_samples": 1, "models": ["logistic_regression"]},
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
        assert perf["rows"] >= cfg.retraining.min_labelled
        assert LivePerformance(**perf).decayed(cfg.retraining.performance_drop), perf
        assert r["reason"].startswith("performance:") and "drift: share" in r["reason"]
        # ... and the new champion starts with no labelled predictions of its own
        assert live_performance(cfg).rows == 0

        # MLflow links the trigger, the drift report and both versions
        tracking.setup(cfg)
        run = MlflowClient().get_run(r["run_id"])
        assert run.data.tags["forge.retrain.challenger"] == r["model_version"]
        assert run.data.tags["forge.retrain.champion_before"] == out["served_before"]
        assert run.data.tags["forge.retrain.trigger"] == r["reason"]
        assert "forge.retrain.drift_report" in run.data.tags

        # the local schedule runs the same check; it starts again from the original data, so the same labelled
        # rows give the same data version (no labelled row is added twice)
        tick = run_schedule(lambda: retrain(cfg, reason="schedule"), cfg.retraining.schedule, every_s=0.1,
                            max_runs=1)["runs"][0]
        assert tick["triggered"] and tick["reason"] == "schedule" and "error" not in tick, tick
        assert tick["data_version"] == r["data_version"]
        ws = Workspace.from_config(cfg)
        assert get_version(ws, cfg.name, r["data_version"]).manifest["retrain_base"] == original_version(ws, "loop").version

        # a retraining on poisoned labels is refused by the gate; the live app keeps its champion, answering throughout
        champion = alias_version(tracking.client(cfg), cfg.name, "champion")
        deadline = time.time() + 60  # the scheduled retraining may have promoted: let the app swap to it first
        while time.time() < deadline and httpx.get(f"{url}/loop/readyz", timeout=10).json()["version"] != champion:
            time.sleep(1)
        served = _served_during(f"{url}/loop", h, out["sample"], lambda: _poisoned_retraining(cfg))
        refused, answers = served
        assert not refused.promoted and refused.gate.champion_version == champion, refused.gate
        assert alias_version(tracking.client(cfg), cfg.name, "champion") == champion
        assert alias_version(tracking.client(cfg), cfg.name, "challenger") == refused.model_version
        assert answers and set(answers) == {champion}
        time.sleep(3 * cfg.serving.model_poll_s)  # past the replicas' next registry poll
        assert httpx.get(f"{url}/loop/readyz", timeout=10).json()["version"] == champion
    finally:
        from ray import serve

        serve.delete("loop")
        tracking.setup(session_cfg)


def _poisoned_retraining(cfg):
    """The last retraining's rows with shuffled labels; the gate judges on the newest true labels, as retraining does."""
    dv = get_version(Workspace.from_config(cfg), cfg.name)  # a retraining's data: served rows carry no entity id
    rcfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"entity": None})})
    rcfg.config_path = cfg.config_path
    real = pd.read_parquet(dv.snapshot).sort_values(cfg.data.timestamp, kind="stable")
    target = cfg.data.target
    noisy = real.assign(**{target: np.random.default_rng(2).permutation(real[target].to_numpy())})
    return train(rcfg, dv.version, frame=noisy, gate_frame=real.tail(400))


def _served_during(base: str, headers: dict, rows: list[dict], work) -> tuple:
    """Run `work` while a client keeps predicting; returns (its result, the model versions that answered)."""
    versions, errors, done = [], [], threading.Event()

    def client():
        while not done.is_set():
            r = httpx.post(f"{base}/v1/predict", json={"instances": rows}, headers=headers, timeout=30)
            (versions.append(r.json()["model"]["version"]) if r.status_code == 200 else errors.append(r.text))
            time.sleep(0.2)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    try:
        result = work()
    finally:
        done.set()
        t.join(timeout=60)
    assert not errors, errors[:3]
    return result, versions
