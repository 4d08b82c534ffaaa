"""`forge serve`: deploy the app on a local or given Ray cluster, and stop it gracefully."""

from __future__ import annotations

import os
import subprocess
import time

from forge.config import ForgeConfig


def _connect(detach: bool):
    import ray

    from forge._runtime import init_ray

    if os.environ.get("RAY_ADDRESS") or not detach:
        return init_ray()
    # A detached app must outlive this process: use (or start) a local head node.
    probe = subprocess.run(["ray", "status"], capture_output=True, text=True)
    if probe.returncode != 0:
        subprocess.run(["ray", "start", "--head", "--disable-usage-stats"], check=True, capture_output=True)
    return init_ray(address="auto") if not ray.is_initialized() else ray


def deploy_app(cfg: ForgeConfig, port: int | None = None, connect=None, timings: dict | None = None) -> str:
    """Run the app on the connected cluster (under `cfg.serving.route_prefix`); returns its base URL.

    Args:
        connect: called once the app is declared, before Serve starts (the cluster connection). Declaring it
            checks the auth settings (no cluster is started for an app that would refuse to run) and is cheap:
            each replica builds its routes over the champion it loads (app.py), so this process never opens
            the registry.
        timings: filled with the seconds each phase took (app_build, cluster, replicas).
    """
    from ray import serve

    from forge.serving.app import build_app

    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    app = build_app(cfg)
    t1 = time.perf_counter()
    timings["app_build"] = t1 - t0
    if connect is not None:
        connect()
    t2 = time.perf_counter()
    timings["cluster"] = t2 - t1
    port = port or cfg.serving.port
    prefix = "/" + cfg.serving.route_prefix.strip("/")
    serve.start(http_options={"host": cfg.serving.host, "port": port})
    serve.run(app, name=cfg.name, route_prefix=prefix, blocking=False)  # returns once the replicas are healthy
    timings["replicas"] = time.perf_counter() - t2
    return f"http://{cfg.serving.host}:{port}{prefix.rstrip('/')}"


def _since_process_start() -> float:
    """Seconds since this process started (Python's start-up and imports come before any Forge code runs): the
    process's start in clock ticks since boot (/proc/self/stat, field 22) against the uptime. 0 off Linux."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return max(float(f.read().split()[0]) - started, 0.0)
    except (OSError, ValueError, IndexError):
        return 0.0


def _phases(total: float, t: dict) -> str:
    imports = max(total - t["app_build"] - t["cluster"] - t["replicas"], 0.0)
    return (f"ready in {total:.1f} s: imports {imports:.1f} s, app build {t['app_build']:.1f} s, cluster "
            f"{t['cluster']:.1f} s, replicas {t['replicas']:.1f} s")


def _check_ports(cfg: ForgeConfig, port: int | None, detach: bool, say) -> None:
    """Before Forge starts a cluster of its own: free what a dead cluster's HAProxy left, or name the holder."""
    import ray

    from forge.serving.ports import free_ports, haproxy_ports

    if os.environ.get("RAY_ADDRESS") or ray.is_initialized():
        return
    if detach and subprocess.run(["ray", "status"], capture_output=True).returncode == 0:
        return  # a running head: its own Serve proxy holds these ports
    ports = {"serving.port": port or cfg.serving.port}
    if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1":
        ports.update(haproxy_ports())
    free_ports(ports, say)


def start(cfg: ForgeConfig, port: int | None = None, detach: bool = False, say=print) -> dict:
    from ray import serve

    _check_ports(cfg, port, detach, say)
    timings: dict = {}
    url = deploy_app(cfg, port, connect=lambda: _connect(detach), timings=timings)
    from forge.serving.app import docs_enabled

    # Where a cold start's time goes, on the line people wait for (bench/coldstart reads it).
    say(f"serving {cfg.name} at {url}" + (f" (docs: {url}/docs)" if docs_enabled(cfg) else "")
        + f"; {_phases(_since_process_start(), timings)}")
    if detach:
        return {"url": url, "app": cfg.name}
    print(f'{{"url": "{url}"}}', flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("shutting down: finishing in-flight requests and flushing the prediction log")
        serve.delete(cfg.name)
    return {"url": url, "stopped": True}


def stop(cfg: ForgeConfig) -> dict:
    """Delete the app: Serve drains in-flight requests and replicas flush their prediction logs."""
    from ray import serve

    from forge._runtime import init_ray

    init_ray(address=os.environ.get("RAY_ADDRESS", "auto"))
    serve.delete(cfg.name)
    return {"stopped": cfg.name}
