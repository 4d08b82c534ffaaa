"""Ray clusters of a test's own on loopback (`ray start`, token auth), beside the session's embedded one.

Each node runs `ray start --block` in a process group of its own, so a test stops exactly its nodes (`ray stop`
would stop every Ray on the machine, the session's too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import free_port

BIN = Path(sys.executable).parent
# A killed node is seen dead in seconds: the GCS checks each raylet every second and gives up after five failed
# checks. Ray's defaults (every 3 s, 5 failures) took up to a minute, during which a search or a Serve app waited
# on the dead node's work. A SIGKILLed raylet fails its check at once (connection refused); the check's timeout
# stays Ray's 10 s, so a raylet that is only slow on a busy 2-core machine is not taken for dead.
FAST_NODE_DEATH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "5"}


def node_ports() -> list[str]:
    """Per-node ports: another Ray on this machine (the session's own) already holds the defaults."""
    return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}"]


def cluster_env(**extra: str) -> dict:
    """The environment of a test cluster's nodes and clients: token auth (Ray 2.60 writes ~/.ray/auth_token at
    `ray start --head`; clients send it with RAY_AUTH_MODE=token), this environment's `python` for jobs, fast
    node-death detection, and never the session's RAY_ADDRESS."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(FAST_NODE_DEATH, RAY_AUTH_MODE="token", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def start_node(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *node_ports(), *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop_node(proc: subprocess.Popen) -> None:
    stop_nodes([proc])


def stop_nodes(procs: list[subprocess.Popen], grace: float = 60) -> None:
    """SIGTERM every node's process group at once (each takes seconds to stop its Ray processes), then wait;
    SIGKILL what outlives the grace."""
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # already gone (a test killed the node)
    for proc in procs:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def ray_auth() -> dict:
    """The Authorization header of the token `ray start --head` wrote."""
    token = Path.home() / ".ray" / "auth_token"
    return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}


def tasks(dashboard: str) -> list[dict]:
    r = httpx.get(f"{dashboard}/api/v0/tasks", params={"limit": 10000, "detail": 1}, headers=ray_auth(), timeout=60)
    r.raise_for_status()
    return r.json()["data"]["result"]["result"]


def restore_current_cluster() -> None:
    """`ray start` made its cluster the machine's current one; make it the session's again (when there is one).

    Ray Train's placement-group cleaner finds its cluster through that file: left pointing at a stopped cluster,
    a later test's TorchTrainer trial stopped by ASHA would keep its CPU reserved for ever.
    """
    import ray

    from forge._runtime import publish_address

    if ray.is_initialized():
        publish_address(ray.get_runtime_context().gcs_address)
