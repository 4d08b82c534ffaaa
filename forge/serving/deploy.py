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


def deploy_app(cfg: ForgeConfig, port: int | None = None, connect=None) -> str:
    """Run the app on the connected cluster (under `cfg.serving.route_prefix`); returns its base URL.

    Args:
        connect: called after the app is built and before Serve starts (the cluster connection).
    """
    from ray import serve

    from forge.serving.app import build_app

    app = build_app(cfg)  # fails fast on auth misconfiguration, before touching the cluster
    if connect is not None:
        connect()
    port = port or cfg.serving.port
    prefix = "/" + cfg.serving.route_prefix.strip("/")
    serve.start(http_options={"host": cfg.serving.host, "port": port})
    serve.run(app, name=cfg.name, route_prefix=prefix, blocking=False)
    return f"http://{cfg.serving.host}:{port}{prefix.rstrip('/')}"


def _check_ports(cfg: ForgeConfig, port: int | None, detach: bool, say) -> None:
    """Before Forge starts a cluster of its own: free what a dead cluster's HAProxy left, or name the holder."""
    import ray

    from forge.serving.ports import free_ports

    if os.environ.get("RAY_ADDRESS") or ray.is_initialized():
        return
    if detach and subprocess.run(["ray", "status"], capture_output=True).returncode == 0:
        return  # a running head: its own Serve proxy holds these ports
    ports = {"serving.port": port or cfg.serving.port}
    if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1":
        ports["HAProxy stats (RAY_SERVE_HAPROXY_STATS_PORT)"] = int(os.environ.get("RAY_SERVE_HAPROXY_STATS_PORT", 8404))
        ports["HAProxy metrics (RAY_SERVE_HAPROXY_METRICS_PORT)"] = int(
            os.environ.get("RAY_SERVE_HAPROXY_METRICS_PORT", 9101))
    free_ports(ports, say)


def start(cfg: ForgeConfig, port: int | None = None, detach: bool = False, say=print) -> dict:
    from ray import serve

    _check_ports(cfg, port, detach, say)
    url = deploy_app(cfg, port, connect=lambda: _connect(detach))
    from forge.serving.app import docs_enabled

    say(f"serving {cfg.name} at {url}" + (f" (docs: {url}/docs)" if docs_enabled(cfg) else ""))
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
