"""`forge up` / `forge down`: the local stack a person opens after the demo.

A Ray head (dashboard and Jobs API, told where Prometheus is; Forge's Serve app on it when a champion exists), the
MLflow UI on the workspace's store, Prometheus (Ray's targets and the Pushgateway, Forge's rules, alerting to
Alertmanager), Alertmanager and the Pushgateway. It runs in dev mode: with no FORGE_JWT_SECRET, the app and
`forge token create --dev` share the workspace's local development secret.

Everything that can refuse is checked before anything starts: the secret, every port (free, not one Ray keeps
for itself), the programs, the champion. While the stack comes up every process is watched: one that exits
stops the rest and is named with its log's last lines. Each process runs in a session of its own, recorded in
the workspace (stack/stack.json), so `forge down` stops exactly what `forge up` started, never another Ray on
the machine, and returns once nothing it started listens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from forge.config import ForgeConfig
from forge.errors import UsageError
from forge.pipelines import _stack_files as files
from forge.pipelines._stack_pages import StackUp, pages
from forge.pipelines._supervisor import StackError, Supervisor, group_alive, listening, stop_groups
from forge.serving.ports import pick_port

STATE = "stack.json"
PROGRAMS = ("ray", "prometheus", "prometheus-alertmanager", "prometheus-pushgateway")
# Ports Ray takes for itself on a head it starts with defaults: its client server, its dashboard agent's two, and
# the range its workers listen on. A stack port there is given to a Ray process sooner or later.
RAY_RESERVED = {10001: "the Ray client server", 52365: "the dashboard agent", 52366: "the dashboard agent's gRPC"}
RAY_WORKER_PORTS = range(10002, 20000)


def _folder(cfg: ForgeConfig) -> Path:
    from forge.workspace import Workspace

    return Workspace.from_config(cfg).local_dir("stack")


def _binary(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise UsageError(f"`{name}` is not installed: `make up` installs it (scripts/sysdeps.sh stack: apt-get "
                         "prometheus, prometheus-alertmanager, prometheus-pushgateway)")
    return found


def _temp(folder: Path) -> str:
    """Ray's temp folder for this stack: short, since Ray's Unix sockets live under it (paths over ~107 bytes
    fail), and one per workspace."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"forge-{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}")


def dev_config(cfg: ForgeConfig) -> ForgeConfig:
    """The project in dev mode, as `forge up` and the demos run it."""
    out = cfg.model_copy(deep=True)
    out.config_path = cfg.config_path
    out.serving.auth.dev_mode = True
    return out


def _ports(cfg: ForgeConfig) -> dict[str, int]:
    """Every port the stack listens on, by the setting that names it; refused when two share one or Ray keeps it."""
    ports = {f"monitoring.stack.{k}": v for k, v in cfg.monitoring.stack.model_dump().items()}
    ports["serving.port"] = cfg.serving.port
    seen: dict[int, str] = {}
    for what, port in ports.items():
        if port in seen:
            raise UsageError(f"{what} and {seen[port]} are both port {port}: give each its own")
        seen[port] = what
        reserved = RAY_RESERVED.get(port) or ("Ray's worker ports (10002-19999)" if port in RAY_WORKER_PORTS else None)
        if reserved:
            raise UsageError(f"{what}: port {port} is one Ray keeps for {reserved}: choose another")
    return ports


def _preflight(cfg: ForgeConfig, say) -> tuple[dict[str, str], dict[str, int], str | None]:
    """Every check that can refuse, before any process starts: (programs, ports, champion version or None)."""
    from forge.registry.client import Registry
    from forge.serving.auth import DEV_SECRET_FILE, settings_for
    from forge.serving.ports import free_ports
    from forge.workspace import Workspace

    fresh = not (Workspace.from_config(cfg).local_dir("secrets") / DEV_SECRET_FILE).exists()
    settings_for(cfg)  # a secret that would not do refuses here, not after Ray is up
    if fresh and not (os.environ.get("FORGE_JWT_SECRET") or os.environ.get("FORGE_JWT_SECRET_FILE")):
        say("dev mode: made a local development secret for the app's tokens (forge token create --dev)")
    programs = {name: _binary(name) for name in PROGRAMS}
    ports = _ports(cfg)
    free_ports(ports, say)
    champion = Registry.of(cfg).version("champion")
    if champion is None:
        say("no champion yet, so no Serve app: run `forge run`, then `forge serve --detach`")
    return programs, ports, champion


def _running(folder: Path) -> dict | None:
    """The recorded stack when its processes still run; a record whose processes are gone is cleared."""
    state = folder / STATE
    if not state.exists():
        return None
    recorded = json.loads(state.read_text())
    if all(group_alive(pid) for pid in recorded["pids"].values()):
        return recorded
    stop_groups(recorded["pids"], grace=5)  # what is left of a stack that died
    state.unlink()
    return None


def up(cfg: ForgeConfig, say, grafana_url: str | None = None) -> StackUp:
    """Start the stack (or find it running); returns its URLs (`app`: None without a champion) and its pages.

    Raises:
        UsageError: a check refused (secret, port, program) before anything started.
        StackError: a process exited or never answered; everything this run started is stopped.
    """
    cfg = dev_config(cfg)
    folder = _folder(cfg)
    running = _running(folder)
    if running is not None:
        say("the stack is already up (`forge down` stops it)")
        return StackUp.from_dict(running["out"])
    programs, ports, champion = _preflight(cfg, say)
    temp = _temp(folder)
    sup = Supervisor(folder)
    try:
        haproxy = _start(cfg, sup, programs, temp, grafana_url, say)
        urls = _urls(cfg, sup)
        app = _serve(cfg, say) if champion else None
    except BaseException:
        stop_groups(sup.pids(), grace=10)
        raise
    out = StackUp({**urls, "app": app}, **pages(cfg, urls, app, grafana_url,
                                                files.grafana_provisioning(folder, urls["prometheus"], temp)))
    (folder / STATE).write_text(json.dumps({"pids": sup.pids(), "out": out.to_dict(), "temp": temp,
                                            "ports": [*ports.values(), *haproxy]}, indent=2))
    return out


def _timed(say, what: str, started: float) -> None:
    say(f"{what}: up ({time.monotonic() - started:.1f} s)")


def _start(cfg: ForgeConfig, sup: Supervisor, programs: dict, temp: str, grafana_url: str | None, say) -> list[int]:
    """Start and wait for each process, one line each; returns the HAProxy ports the head's Serve will hold."""
    from forge.serving.auth import create_token, settings_for

    s, folder = cfg.monitoring.stack, sup.folder
    files.prometheus_config(cfg, folder, temp)
    settings = settings_for(cfg)
    admin = create_token(settings, "alertmanager", ["admin"], cfg.serving.auth.max_ttl_s) if settings.enabled \
        else "auth-off"
    files.alertmanager_config(cfg, folder, admin)
    haproxy = [pick_port(), pick_port()]
    t0 = time.monotonic()
    sup.spawn("ray", _ray_head(cfg, programs["ray"], temp), _ray_env(cfg, haproxy, grafana_url))
    sup.wait("ray", f"http://127.0.0.1:{s.dashboard_port}/api/version", 180, _ray_token())
    _timed(say, f"Ray head and dashboard on port {s.dashboard_port}", t0)
    for name, argv, port in (
            ("pushgateway", [programs["prometheus-pushgateway"]], s.pushgateway_port),
            ("alertmanager", [programs["prometheus-alertmanager"], f"--config.file={folder / 'alertmanager.yml'}",
                              f"--storage.path={folder / 'alertmanager-data'}", "--cluster.listen-address="],
             s.alertmanager_port),
            ("prometheus", [programs["prometheus"], f"--config.file={folder / 'prometheus.yml'}",
                            f"--storage.tsdb.path={folder / 'prometheus-data'}"], s.prometheus_port)):
        t0 = time.monotonic()
        sup.spawn(name, [*argv, f"--web.listen-address=127.0.0.1:{port}"])
        sup.wait(name, f"http://127.0.0.1:{port}/-/ready", 120)
        _timed(say, f"{name} on port {port}", t0)
    _mlflow(cfg, sup, say)
    return haproxy


def _ray_head(cfg: ForgeConfig, ray: str, temp: str) -> list[str]:
    s = cfg.monitoring.stack
    internal = ["dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
                "runtime-env-agent-port", "node-manager-port", "object-manager-port", "ray-client-server-port"]
    return [ray, "start", "--head", "--block", "--disable-usage-stats", f"--port={s.ray_port}",
            f"--dashboard-port={s.dashboard_port}", "--dashboard-host=127.0.0.1", f"--temp-dir={temp}",
            *(f"--{p}={pick_port()}" for p in internal)]


def _ray_env(cfg: ForgeConfig, haproxy: list[int], grafana_url: str | None) -> dict:
    from forge._runtime import FAST_INGRESS

    s = cfg.monitoring.stack
    fast = FAST_INGRESS if os.environ.get("FORGE_FAST_INGRESS", "1") != "0" else {}
    env = {**fast, "RAY_AUTH_MODE": "token", "RAY_PROMETHEUS_HOST": f"http://127.0.0.1:{s.prometheus_port}",
           "RAY_SERVE_HAPROXY_STATS_PORT": str(haproxy[0]), "RAY_SERVE_HAPROXY_METRICS_PORT": str(haproxy[1])}
    if grafana_url:  # the dashboard's Metrics page embeds Grafana's panels from there
        env["RAY_GRAFANA_HOST"] = grafana_url.rstrip("/")
    return env


def _ray_token() -> dict:
    token = Path.home() / ".ray" / "auth_token"
    return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}


def _mlflow(cfg: ForgeConfig, sup: Supervisor, say) -> None:
    """The MLflow UI on the workspace's store; a configured tracking server is shown, not started."""
    from forge.workspace import tracking_uri

    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        return
    port, t0 = cfg.monitoring.stack.mlflow_port, time.monotonic()
    sup.spawn("mlflow", [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
                         "--port", str(port), "--workers", "1"])
    sup.wait("mlflow", f"http://127.0.0.1:{port}/health", 120)
    _timed(say, f"MLflow UI on port {port}", t0)


def _urls(cfg: ForgeConfig, sup: Supervisor) -> dict[str, str]:
    from forge.workspace import tracking_uri

    s, uri = cfg.monitoring.stack, tracking_uri(cfg)
    mlflow = uri.rstrip("/") if uri.startswith(("http://", "https://")) else f"http://127.0.0.1:{s.mlflow_port}"
    return {"ray_dashboard": f"http://127.0.0.1:{s.dashboard_port}", "mlflow": mlflow,
            "prometheus": f"http://127.0.0.1:{s.prometheus_port}",
            "alertmanager": f"http://127.0.0.1:{s.alertmanager_port}",
            "pushgateway": f"http://127.0.0.1:{s.pushgateway_port}"}


def _serve(cfg: ForgeConfig, say) -> str:
    """Forge's app on the stack's head, in dev mode (a separate process: this one stays off Ray)."""
    t0 = time.monotonic()
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{cfg.monitoring.stack.ray_port}", "RAY_AUTH_MODE": "token",
           "FORGE_SERVING__AUTH__DEV_MODE": "true"}
    argv = [sys.executable, "-m", "forge.cli", "serve", "--detach", "-c", str(cfg.config_path), "--json"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)  # nosec B603: our own CLI
    if r.returncode != 0:
        raise StackError(f"the Serve app did not deploy:\n{r.stderr.strip()[-1500:]}")
    url = json.loads(r.stdout.strip().splitlines()[-1])["url"]
    _timed(say, f"the app on port {cfg.serving.port}", t0)
    return url


def down(cfg: ForgeConfig, timeout: float = 60) -> dict:
    """Stop what `forge up` started (idempotent), returning once nothing it started listens on its ports."""
    folder = _folder(cfg)
    state = folder / STATE
    if not state.exists():
        return {"stopped": [], "detail": "no stack recorded here"}
    recorded = json.loads(state.read_text())
    stopped = stop_groups(recorded["pids"])
    from forge.serving.ports import PortInUse, free_ports

    # Serve's HAProxy outlives its cluster (it leaves the head's process group) and its controller can take a
    # few seconds more: an orphaned HAProxy is stopped; what else still listens is waited for.
    ports = recorded.get("ports", [])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(listening(p) for p in ports):
        try:
            free_ports({f"port {p}": p for p in ports if listening(p)}, lambda _: None)
        except PortInUse:
            pass  # still parented by a dying Ray worker, or someone else's: not ours to stop
        time.sleep(0.5)
    still = [p for p in ports if listening(p)]
    if recorded.get("temp") == _temp(folder):
        shutil.rmtree(recorded["temp"], ignore_errors=True)
    state.unlink()
    if still:
        raise StackError(f"stopped {stopped}, but ports {still} still listen after {timeout:.0f} s")
    return {"stopped": stopped, "detail": "stopped; nothing it started listens"}
