"""A/B variants and shadow traffic on a live app; variants changed without a restart; the log is exact
after a graceful shutdown."""

import time

import httpx
import mlflow
import pytest

from forge.config import TrafficConfig, Variant
from forge.monitoring.prediction_log import read_log
from forge.registry.client import Registry
from forge.training import tracking
from forge.training.packaging import ForgeModel, signature_of
from forge.workspace import Workspace
from tests.conftest import state_address
from tests.serving.test_app import _rows

pytestmark = pytest.mark.integration


def _register(cfg, behaviour: str) -> str:
    """A version whose estimator raises or sleeps (classes defined here are pickled by value)."""
    tracking.setup(cfg)
    registry = Registry.of(cfg)
    champ = registry.load("champion")

    def make():
        class Bad:
            classes_ = champ.estimator.classes_

            def predict_proba(self, X):
                if behaviour == "raise":
                    raise RuntimeError("shadow model failure")
                time.sleep(2.0)
                return champ.estimator.predict_proba(X)

        return Bad()

    model = ForgeModel(champ.transform, make(), champ.task, champ.inputs, champ.schema)
    import pandas as pd

    example = pd.DataFrame(_rows(cfg, 3))
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name(cfg.name).experiment_id):
        return registry.register(model, example, tags={}, signature=signature_of(champ, example))


@pytest.fixture
def traffic_reset(served):
    cfg, _ = served
    yield
    Registry.of(cfg).set_traffic(None)


def _wait_for(url, headers, pred, timeout=45):
    """Until every live replica of the app reports the change (an earlier load test may have scaled it to two)."""
    deadline = time.time() + timeout
    latest: dict = {}
    while time.time() < deadline:
        meta = httpx.get(f"{url}/v1/models", headers=headers, timeout=30).json()
        latest[meta["replica"]] = pred(meta)
        live = {a.actor_id for a in _alive() if a.class_name.startswith("ServeReplica:churn:")}
        if sum(latest.values()) >= len(live) and all(latest.values()):
            return meta
        time.sleep(0.2)
    raise AssertionError(f"app did not pick up the change: {meta} {latest}")


def test_ab_sticky_variants_and_failing_or_slow_shadow(served, auth_headers, traffic_reset):

    cfg, url = served
    h = auth_headers()
    champion = httpx.get(f"{url}/readyz").json()["version"]
    raising, sleeping = _register(cfg, "raise"), _register(cfg, "sleep")
    pids = {a.pid for a in _alive() if "ServeReplica:churn" in a.class_name}

    Registry.of(cfg).set_traffic(TrafficConfig(experiment_id="exp-1", variants=[Variant(name="control", model="champion"),
                                                                      Variant(name="treatment", model=champion)],
                                   shadow=raising))
    _wait_for(url, h, lambda m: {x["variant"] for x in m["models"]} == {"control", "treatment", "shadow"})
    seen: dict[str, set] = {}
    ids = []
    for i in range(30):
        key = f"user-{i % 6}"
        r = httpx.post(f"{url}/v1/predict", json={"instances": _rows(cfg, 1, seed=i)},
                       headers={**h, "x-forge-key": key}, timeout=30)
        assert r.status_code == 200, r.text  # the raising shadow never reaches the caller
        seen.setdefault(key, set()).add(r.json()["variant"])
        ids.append(r.json()["request_id"])
    assert all(len(v) == 1 for v in seen.values()), seen  # sticky
    assert set().union(*seen.values()) == {"control", "treatment"}

    Registry.of(cfg).set_traffic(TrafficConfig(experiment_id="exp-1", variants=[Variant(name="control", model="champion")],
                                   shadow=sleeping))
    _wait_for(url, h, lambda m: any(x["variant"] == "shadow" and x["version"] == sleeping for x in m["models"]))
    t0 = time.perf_counter()
    for _ in range(5):
        assert httpx.post(f"{url}/v1/predict", json={"instances": _rows(cfg, 1)}, headers=h,
                          timeout=30).status_code == 200
    assert (time.perf_counter() - t0) / 5 < 1.0  # a 2 s shadow does not slow the caller
    after = {a.pid for a in _alive() if "ServeReplica:churn" in a.class_name}
    assert after == pids  # variants changed without restarting a replica
    time.sleep(3)
    log = read_log(Workspace.from_config(cfg).predictions(cfg.name))
    mine = log[log["request_id"].isin(ids)]
    assert set(mine["variant"]) == {"control", "treatment"}  # the raising shadow logged nothing


def _log_app(cfg, name: str, flush_interval_s: float, replicas: int | None = None) -> None:
    """The session's model as a second app under /<name>, flushing its log only every `flush_interval_s`."""
    from ray import serve

    from forge.serving.app import build_app

    app_cfg = cfg.model_copy(deep=True)
    app_cfg.config_path = cfg.config_path
    app_cfg.monitoring.prediction_log.flush_interval_s = flush_interval_s
    app_cfg.monitoring.prediction_log.flush_rows = 10_000
    if replicas:
        app_cfg.serving.autoscaling.min_replicas = app_cfg.serving.autoscaling.max_replicas = replicas
    serve.run(build_app(app_cfg), name=name, route_prefix=f"/{name}", blocking=False)


def _predict(url: str, name: str, headers: dict, cfg, n: int, seed: int) -> list[str]:
    """n single-row predictions through /<name>; their request ids."""
    ids = []
    for i in range(n):
        r = httpx.post(f"{url}/{name}/v1/predict", json={"instances": _rows(cfg, 1, seed=seed + i)}, headers=headers,
                       timeout=30)
        assert r.status_code == 200
        ids.append(r.json()["request_id"])
    return ids


def _alive():
    from ray.util.state import list_actors

    return list_actors(address=state_address(), filters=[("state", "=", "ALIVE")])


def test_exactly_n_records_after_a_replica_is_killed_and_after_a_graceful_shutdown(served, auth_headers):
    """One app that flushes its log only every 10 minutes: what a SIGKILLed replica held only in its write-ahead
    segment is recovered by its replacement, and what the replacement buffers is flushed by a graceful shutdown."""
    import os
    import signal

    from ray import serve

    cfg, url = served
    _log_app(cfg, "logtest", flush_interval_s=600, replicas=1)
    folder = Workspace.from_config(cfg).predictions(cfg.name)
    try:
        ids = _predict(url, "logtest", auth_headers(), cfg, 29, seed=900)
        assert read_log(folder)["request_id"].isin(ids).sum() == 0  # still only in the write-ahead segment
        [victim] = [a for a in _alive() if a.class_name.startswith("ServeReplica:logtest:")]
        os.kill(victim.pid, signal.SIGKILL)  # no graceful shutdown, no flush
        deadline = time.time() + 90
        while time.time() < deadline and read_log(folder)["request_id"].isin(ids).sum() < 29:
            time.sleep(1)  # Serve starts a new replica; its logger recovers the dead one's segment
        assert read_log(folder)["request_id"].isin(ids).sum() == 29
        assert any(a.pid != victim.pid for a in _alive() if a.class_name.startswith("ServeReplica:logtest:"))

        later = _predict(url, "logtest", auth_headers(), cfg, 37, seed=500)
        assert read_log(folder)["request_id"].isin(later).sum() == 0  # buffered by the replacement
    finally:
        serve.delete("logtest")  # graceful: the replica flushes what it holds
    deadline = time.time() + 30
    while time.time() < deadline and read_log(folder)["request_id"].isin(later).sum() < 37:
        time.sleep(0.5)
    assert read_log(folder)["request_id"].isin(later).sum() == 37
