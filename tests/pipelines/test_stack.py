"""`forge up` / `forge down`, the first hour: refusals before anything starts (a taken port named with its holder, a
port Ray keeps named as such), a head that crashes reported at once with its log, then `forge up` in dev mode with
no secret set (after a champion exists, as after `make demo`), a second `forge up` that prints the table again,
every printed page answering 200 and rendering in headless Chromium with no network (/docs included), `forge down`
leaving nothing listening, a second `forge up` after it, and `forge down` twice."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from forge.pipelines._stack_pages import table
from tests.conftest import cli, free_port, require_binary, run_cli
from tests.raycluster import ray_auth, restore_current_cluster

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.slow]


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
    env["FORGE_JWT_SECRET"] = ""  # as after `make demo`: no secret set, dev mode's local one is made and used
    yield env, [*ports.values(), int(env["FORGE_SERVING__PORT"])]
    restore_current_cluster()


def _prometheus_targets_up(url: str, timeout: float = 90) -> set[str]:
    deadline, up = time.time() + timeout, set()
    while time.time() < deadline:
        targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        if {"ray", "pushgateway"} <= up:
            return up
        time.sleep(2)
    return up


def _refusals(cfg, env: dict, ports: list[int]) -> None:
    """A taken port (held by another process, named with its pid) and a port Ray keeps: each named, and nothing
    started."""
    port = free_port()
    holder = subprocess.Popen([sys.executable, "-c", "import socket,time; s=socket.socket(); "
                               f"s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(120)"])
    try:
        deadline = time.time() + 10
        while not _listening(port) and time.time() < deadline:
            time.sleep(0.1)
        r = cli("up", "-c", cfg.config_path, env={**env, "FORGE_MONITORING__STACK__PROMETHEUS_PORT": str(port)})
        assert r.returncode == 1, r.stderr[-2000:]  # a runtime conflict; a port Ray keeps is a bad setting (2)
        assert f"monitoring.stack.prometheus_port: port {port} is held by" in r.stderr, r.stderr
        assert f"(pid {holder.pid})" in r.stderr, r.stderr
    finally:
        holder.kill()
        holder.wait()
    r = cli("up", "-c", cfg.config_path, env={**env, "FORGE_MONITORING__STACK__MLFLOW_PORT": "10005"})
    assert r.returncode == 2 and "monitoring.stack.mlflow_port: port 10005 is one Ray keeps for Ray's worker " \
                                  "ports" in r.stderr, r.stderr[-2000:]
    assert not any(_listening(p) for p in ports)


def _a_crashed_head_is_reported_at_once(cfg, env: dict, ports: list[int]) -> None:
    """Ray's temp folder taken by a file: `ray start --head` exits at once, and so does `forge up`, naming it."""
    from forge.pipelines.stack import _folder, _temp

    temp = _temp(_folder(cfg))
    open(temp, "w").close()
    try:
        t0 = time.monotonic()
        r = cli("up", "-c", cfg.config_path, env=env)
        took = time.monotonic() - t0
    finally:
        os.unlink(temp)
    assert r.returncode == 1 and "ray exited (code" in r.stderr and "the last lines of" in r.stderr, r.stderr[-3000:]
    assert took < 10, f"the crashed head was reported after {took:.1f} s"
    time.sleep(1)
    assert not [p for p in ports if _listening(p)], "a failed `forge up` left something listening"


def _chromium_renders(url: str, tmp_path, needle: str) -> None:
    """The page in headless Chromium with every host but loopback unresolvable: it renders, offline."""
    chromium = require_binary("chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=15000",
             "--dump-dom", url]
    dom = subprocess.run([chromium, *flags], capture_output=True, text=True, timeout=120).stdout
    body = dom[dom.find("<body"):]
    assert needle in body, (url, body[:1500])


def _every_page_answers(out: dict, tmp_path) -> None:
    expect = {"ray_dashboard": "Authentication Token", "mlflow": "<div", "prometheus_alerts": "Alerts",
              "prometheus_targets": "Targets", "alertmanager": "[", "pushgateway": "Pushgateway",
              "app_docs": "/v1/predict"}
    assert set(out["pages"]) == set(expect), out["pages"]
    for name, url in out["pages"].items():
        r = httpx.get(url, headers=ray_auth() if name == "ray_dashboard" else None, timeout=30)
        assert r.status_code == 200 and r.text.strip(), (name, url, r.status_code)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # two browsers at a time, each with a profile of its own
        list(pool.map(lambda item: _chromium_renders(item[1], tmp_path / item[0], expect[item[0]]),
                      out["pages"].items()))


def test_up_answers_everywhere_and_down_leaves_nothing(trained_project, stack_env, tmp_path):
    cfg, _ = trained_project
    env, ports = stack_env
    _refusals(cfg, env, ports)
    _a_crashed_head_is_reported_at_once(cfg, env, ports)
    for attempt in (1, 2):  # a second `forge up` after `forge down` works: nothing of the first is left in its way
        # the first as a user runs it, a process of its own; then in this process
        r = run_cli("up", "-c", str(cfg.config_path), env=env, timeout=600) if attempt == 1 else \
            cli("up", "-c", cfg.config_path, "--json", env=env)
        try:
            assert r.returncode == 0, r.stderr[-3000:]
            out = _json(cli("up", "-c", cfg.config_path, "--json", env=env))  # already up: the table again
            assert {"ray_dashboard", "mlflow", "prometheus", "alertmanager", "pushgateway", "app"} <= set(out)
            if attempt == 1:
                printed = r.stdout.strip().splitlines()
                assert printed == table(out) and max(map(len, printed)) <= 80, printed
                again = cli("up", "-c", cfg.config_path, env=env)
                assert again.returncode == 0 and "already up" in again.stderr and again.stdout.strip() == r.stdout.strip()
                _every_page_answers(out, tmp_path)
                _grafana_provisioning_points_at_this_stack(out)
            assert httpx.get(f"{out['ray_dashboard']}/api/version", headers=ray_auth(), timeout=10).status_code == 200
            assert httpx.get(f"{out['mlflow']}/api/2.0/mlflow/experiments/search", params={"max_results": 5},
                             timeout=10).json()["experiments"], "the MLflow UI shows the workspace's experiments"
            assert {"ray", "pushgateway"} <= _prometheus_targets_up(out["prometheus"])
            rules = httpx.get(f"{out['prometheus']}/api/v1/rules", timeout=10).json()["data"]["groups"]
            assert {g["name"] for g in rules} >= {"forge.serving", "forge.model"}
            _dev_token_is_accepted(cfg, env, out["app"])
        finally:
            down = _json(cli("down", "-c", cfg.config_path, "--json", env=env))
        assert {"ray", "prometheus", "alertmanager", "pushgateway", "mlflow"} <= set(down["stopped"]), down
        assert not [p for p in ports if _listening(p)], f"attempt {attempt}: still listening"
        from forge.workspace import Workspace

        assert not (Workspace.from_config(cfg).local_dir("stack") / "stack.json").exists()
    again = _json(cli("down", "-c", cfg.config_path, "--json", env=env))
    assert again["stopped"] == []


def _dev_token_is_accepted(cfg, env: dict, app: str) -> None:
    """`forge token create --dev` signs with the secret the app was started with (no secret was set), kept
    owner-only in the workspace's local part."""
    from forge.workspace import Workspace

    secret = Workspace.from_config(cfg).local_dir("secrets") / "jwt-dev-secret"
    assert secret.exists() and secret.stat().st_mode & 0o077 == 0, oct(secret.stat().st_mode)
    token = cli("token", "create", "--dev", "-c", cfg.config_path, env=env).stdout.strip()
    r = httpx.get(f"{app}/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert httpx.get(f"{app}/v1/models", timeout=30).status_code == 401


def _grafana_provisioning_points_at_this_stack(out: dict) -> None:
    """No Grafana is started; the folder `forge up` prints provisions yours: the datasource Forge's dashboards
    select, on this stack's Prometheus, and Forge's dashboards and Ray's."""
    import yaml

    folder = Path(out["grafana"]["provisioning"])
    source = yaml.safe_load((folder / "datasources" / "forge.yaml").read_text())["datasources"][0]
    assert source["uid"] == "forge-prometheus" and source["url"] == out["prometheus"], source
    providers = {p["name"]: p["options"]["path"] for p in
                 yaml.safe_load((folder / "dashboards" / "forge.yaml").read_text())["providers"]}
    assert list(Path(providers["forge"]).glob("*.json")), providers  # Forge's dashboards, from the checkout
    assert providers["ray"].endswith("session_latest/metrics/grafana/dashboards"), providers
