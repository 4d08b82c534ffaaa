"""`forge up` / `forge down`: the local stack answers on every URL it prints, a taken port is named before
anything starts, `forge down` leaves nothing listening and no state, a second `forge up` works, and `forge down`
runs twice."""

import json
import socket
import time

import httpx
import pytest

from tests.conftest import free_port, run_cli
from tests.deploy.test_cluster import _auth, _restore_current_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _json(r) -> dict:
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stack_env():
    keys = ("RAY_PORT", "DASHBOARD_PORT", "MLFLOW_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "PUSHGATEWAY_PORT")
    ports = {k: free_port() for k in keys}
    env = {f"FORGE_MONITORING__STACK__{k}": str(p) for k, p in ports.items()}
    env["FORGE_SERVING__PORT"] = str(free_port())  # the session's app holds the project's own port
    env["RAY_ADDRESS"] = ""
    yield env, [*ports.values(), int(env["FORGE_SERVING__PORT"])]
    _restore_current_cluster()


def _prometheus_targets_up(url: str, timeout: float = 90) -> set[str]:
    deadline, up = time.time() + timeout, set()
    while time.time() < deadline:
        targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        if {"ray", "pushgateway"} <= up:
            return up
        time.sleep(2)
    return up


def test_up_answers_everywhere_and_down_leaves_nothing(trained_project, stack_env):
    cfg, _ = trained_project
    env, ports = stack_env
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:  # a taken port: named, and nothing started
        r = run_cli("up", "-c", str(cfg.config_path), env={**env, "FORGE_MONITORING__STACK__PROMETHEUS_PORT":
                                                              str(taken.getsockname()[1])}, timeout=120)
        assert r.returncode != 0 and "monitoring.stack.prometheus_port" in r.stderr, r.stderr[-2000:]
        assert not any(_listening(p) for p in ports)
    finally:
        taken.close()
    for attempt in (1, 2):  # a second `forge up` after `forge down` works: nothing of the first is left in its way
        out = _json(run_cli("up", "-c", str(cfg.config_path), "--json", env=env, timeout=600))
        urls = out
        assert set(urls) == {"ray_dashboard", "mlflow", "prometheus", "alertmanager", "pushgateway", "app"}
        try:
            assert httpx.get(f"{urls['ray_dashboard']}/api/version", headers=_auth(), timeout=10).status_code == 200
            assert httpx.get(f"{urls['mlflow']}/api/2.0/mlflow/experiments/search", params={"max_results": 5},
                             timeout=10).json()["experiments"], "the MLflow UI shows the workspace's experiments"
            assert httpx.get(f"{urls['alertmanager']}/-/ready", timeout=10).status_code == 200
            assert {"ray", "pushgateway"} <= _prometheus_targets_up(urls["prometheus"])
            rules = httpx.get(f"{urls['prometheus']}/api/v1/rules", timeout=10).json()["data"]["groups"]
            assert {g["name"] for g in rules} >= {"forge.serving", "forge.model"}
            assert httpx.get(f"{urls['app']}/readyz", timeout=30).status_code == 200, "the champion is served"
        finally:
            down = _json(run_cli("down", "-c", str(cfg.config_path), "--json", env=env, timeout=300))
        assert {"ray", "prometheus", "alertmanager", "pushgateway", "mlflow"} <= set(down["stopped"]), down
        time.sleep(1)
        assert not [p for p in ports if _listening(p)], f"attempt {attempt}: still listening"
        from forge.workspace import Workspace

        assert not (Workspace.from_config(cfg).local_dir("stack") / "stack.json").exists()
    again = _json(run_cli("down", "-c", str(cfg.config_path), "--json", env=env, timeout=60))
    assert again["stopped"] == []
