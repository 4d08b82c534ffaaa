"""`forge up` / `forge down`: the local stack a person opens after the demo.

A Ray head (dashboard and Jobs API, told where Prometheus is so its metrics views work; Forge's Serve app on it
when a champion exists), the MLflow UI on the workspace's store, Prometheus (scraping Ray's service-discovery
file and the Pushgateway, with Forge's rules, alerting to Alertmanager), Alertmanager and the Pushgateway.

Every process runs in its own session and is recorded with its process group in the workspace (stack/
stack.json), so `forge down` stops exactly what `forge up` started, never another Ray on the machine (`ray
stop` would stop them all). Ports are checked before anything starts; a taken one is named.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from forge.config import ForgeConfig
from forge.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
STATE = "stack.json"


def _folder(cfg: ForgeConfig) -> Path:
    from forge.workspace import Workspace

    return Workspace.from_config(cfg).local_dir("stack")


def _binary(name: str) -> str:
    found = shutil.which(name) or (str(Path(sys.executable).parent / name)
                                   if (Path(sys.executable).parent / name).exists() else None)
    if not found:
        raise UsageError(f"`{name}` is not installed: run `make setup` (apt-get prometheus, "
                         "prometheus-alertmanager, prometheus-pushgateway)")
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(name: str, argv: list[str], folder: Path, env: dict | None = None) -> int:
    log = (folder / f"{name}.log").open("w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,  # nosec B603: fixed binaries, our paths
                            start_new_session=True, env={**os.environ, **(env or {})})
    return proc.pid


def _wait(url: str, what: str, timeout: float = 120, headers: dict | None = None) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise UsageError(f"{what} did not answer {url} within {timeout:.0f} s (its log is in the stack folder)")


def _ray_token() -> dict:
    token = Path.home() / ".ray" / "auth_token"
    return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}


def _ray_head(cfg: ForgeConfig, folder: Path, temp: str) -> int:
    s = cfg.monitoring.stack
    internal = ["dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
                "runtime-env-agent-port", "node-manager-port", "object-manager-port", "ray-client-server-port"]
    argv = [_binary("ray"), "start", "--head", "--block", "--disable-usage-stats", f"--port={s.ray_port}",
            f"--dashboard-port={s.dashboard_port}", "--dashboard-host=127.0.0.1", f"--temp-dir={temp}",
            *(f"--{p}={_free_port()}" for p in internal)]
    from forge._runtime import FAST_INGRESS

    fast = FAST_INGRESS if os.environ.get("FORGE_FAST_INGRESS", "1") != "0" else {}
    env = {**fast, "RAY_AUTH_MODE": "token", "RAY_PROMETHEUS_HOST": f"http://127.0.0.1:{s.prometheus_port}",
           "RAY_SERVE_HAPROXY_STATS_PORT": os.environ.get("RAY_SERVE_HAPROXY_STATS_PORT", str(_free_port())),
           "RAY_SERVE_HAPROXY_METRICS_PORT": os.environ.get("RAY_SERVE_HAPROXY_METRICS_PORT", str(_free_port()))}
    return _spawn("ray", argv, folder, env)


def _monitoring_configs(cfg: ForgeConfig, folder: Path, temp: str) -> None:
    """Prometheus (Ray's targets, the Pushgateway, Forge's rules, Alertmanager) and Alertmanager's routing."""
    s = cfg.monitoring.stack
    groups = yaml.safe_load((ROOT / "kuberay" / "base" / "prometheus-rules.yaml").read_text())["spec"]["groups"]
    (folder / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "10s", "evaluation_interval": "10s"},
        "rule_files": [str(folder / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{s.alertmanager_port}"]}]}]},
        "scrape_configs": [
            {"job_name": "ray", "file_sd_configs": [
                {"files": [f"{temp}/session_latest/prom_metrics_service_discovery.json",
                           f"{temp}/prom_metrics_service_discovery.json"]}]},
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [f"127.0.0.1:{s.pushgateway_port}"]}]}]}))
    am = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    if _admin_token(cfg, folder / "forge-admin.token"):
        for receiver in am["receivers"]:
            for hook in receiver.get("webhook_configs", []) if receiver["name"] == "forge" else []:
                hook["url"] = f"http://127.0.0.1:{cfg.serving.port}/v1/alerts"
    else:  # no JWT secret here: Alertmanager could not authenticate to /v1/alerts, so it does not try
        am["receivers"] = [r for r in am["receivers"] if r["name"] != "forge"]
        am["route"]["routes"] = [r for r in am["route"]["routes"] if r["receiver"] != "forge"]
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(am))


def _admin_token(cfg: ForgeConfig, path: Path) -> bool:
    """An admin token for Alertmanager's calls to /v1/alerts (as long-lived as serving.auth.max_ttl_s allows)."""
    from forge.serving.auth import AuthSetupError, Settings, create_token

    try:
        settings = Settings.from_config(cfg.serving.auth)
        if not settings.enabled:
            path.write_text("auth-off")
            return True
        path.write_text(create_token(settings, "alertmanager", ["admin"], cfg.serving.auth.max_ttl_s))
        path.chmod(0o600)
        return True
    except (AuthSetupError, ValueError):
        return False


def _temp(folder: Path) -> str:
    """Ray's temp folder for this stack: short, since Ray's Unix sockets live under it (paths over ~107 bytes
    fail), and one per workspace."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"forge-{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}")


def up(cfg: ForgeConfig, say) -> dict:
    """Start the stack; returns its URLs (app: None without a champion).

    Raises:
        PortInUse: a taken port, named, before anything starts.
    """
    from forge.serving.ports import free_ports

    folder = _folder(cfg)
    if (folder / STATE).exists():
        raise UsageError(f"the stack is already up ({folder / STATE}): `forge down` first")
    s = cfg.monitoring.stack
    ports = {f"monitoring.stack.{k}": v for k, v in s.model_dump().items()} | {"serving.port": cfg.serving.port}
    free_ports(ports, say)
    temp = _temp(folder)
    _monitoring_configs(cfg, folder, temp)
    pids: dict[str, int] = {}
    try:
        pids["ray"] = _ray_head(cfg, folder, temp)
        _wait(f"http://127.0.0.1:{s.dashboard_port}/api/version", "the Ray dashboard", 180, _ray_token())
        pids["pushgateway"] = _spawn("pushgateway", [_binary("prometheus-pushgateway"),
                                                     f"--web.listen-address=127.0.0.1:{s.pushgateway_port}"], folder)
        pids["alertmanager"] = _spawn("alertmanager", [
            _binary("prometheus-alertmanager"), f"--config.file={folder / 'alertmanager.yml'}",
            f"--storage.path={folder / 'alertmanager-data'}", "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{s.alertmanager_port}"], folder)
        pids["prometheus"] = _spawn("prometheus", [
            _binary("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'prometheus-data'}", f"--web.listen-address=127.0.0.1:{s.prometheus_port}"],
            folder)
        urls = _urls(cfg)
        mlflow = _mlflow(cfg, folder, pids)
        for name in ("pushgateway", "alertmanager", "prometheus"):
            _wait(f"{urls[name]}/-/ready", name)
        _wait(f"{mlflow}/health", "the MLflow server")
        urls["mlflow"] = mlflow
        urls["app"] = _serve(cfg, say)
    except BaseException:
        _stop(pids)
        raise
    (folder / STATE).write_text(json.dumps({"pids": pids, "urls": urls, "temp": temp}, indent=2))
    return urls  # DESIGN's `forge up --json`: ray_dashboard, mlflow, prometheus, alertmanager, pushgateway, app


def _urls(cfg: ForgeConfig) -> dict[str, str | None]:
    s = cfg.monitoring.stack
    return {"ray_dashboard": f"http://127.0.0.1:{s.dashboard_port}", "prometheus": f"http://127.0.0.1:{s.prometheus_port}",
            "alertmanager": f"http://127.0.0.1:{s.alertmanager_port}",
            "pushgateway": f"http://127.0.0.1:{s.pushgateway_port}"}


def _mlflow(cfg: ForgeConfig, folder: Path, pids: dict) -> str:
    """The MLflow UI on the workspace's store; a configured tracking server is shown, not started."""
    from forge.workspace import tracking_uri

    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    port = cfg.monitoring.stack.mlflow_port
    pids["mlflow"] = _spawn("mlflow", [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
                                       "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], folder)
    return f"http://127.0.0.1:{port}"


def _serve(cfg: ForgeConfig, say) -> str | None:
    """Forge's app on the stack's head when a champion exists (a separate process: this one stays off Ray)."""
    from forge.registry.client import Registry

    if Registry.of(cfg).version("champion") is None:
        say("forge up: no champion yet, so no Serve app (run `forge run`, then `forge serve --detach`)")
        return None
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{cfg.monitoring.stack.ray_port}", "RAY_AUTH_MODE": "token"}
    argv = [sys.executable, "-m", "forge.cli", "serve", "--detach", "-c", str(cfg.config_path), "--json"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)  # nosec B603: our own CLI
    if r.returncode != 0:
        raise UsageError(f"forge up: the Serve app did not deploy: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["url"]


def _stop(pids: dict[str, int], grace: float = 20) -> list[str]:
    """SIGTERM each recorded process group, then SIGKILL what is left; returns what was stopped."""
    stopped = []
    for name, pid in reversed(list(pids.items())):
        try:
            os.killpg(pid, signal.SIGTERM)
            stopped.append(name)
        except ProcessLookupError:
            continue
    deadline = time.time() + grace
    for pid in pids.values():
        while time.time() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return stopped


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def down(cfg: ForgeConfig) -> dict:
    """Stop what `forge up` started (idempotent: nothing recorded, nothing to do)."""
    folder = _folder(cfg)
    state = folder / STATE
    if not state.exists():
        return {"stopped": [], "detail": "no stack recorded here"}
    recorded = json.loads(state.read_text())
    stopped = _stop(recorded["pids"])
    from forge.serving.ports import PortInUse, free_ports

    # Serve's HAProxy outlives its cluster (it leaves the head's process group): stop it once it is orphaned,
    # which is a moment after the Ray worker that started it dies
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            free_ports({"serving.port": cfg.serving.port}, lambda _: None)
            break
        except PortInUse:
            time.sleep(0.5)  # still parented by a dying Ray worker, or someone else's: not ours to stop
    if recorded.get("temp") == _temp(folder):
        shutil.rmtree(recorded["temp"], ignore_errors=True)
    state.unlink()
    return {"stopped": stopped, "detail": "stopped"}
