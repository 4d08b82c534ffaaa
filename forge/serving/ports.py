"""The ports a local Serve app needs, checked before Ray starts: after `ray stop --force` (what a crashed node or
an OOM-killed raylet looks like), Serve's HAProxy can outlive its cluster and keep 8000, 8404 and 9101. An
orphaned HAProxy (its parent is no Ray process) is stopped; anything else holding a port is named, not killed.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable

import psutil

from forge.errors import ForgeError


class PortInUse(ForgeError):
    """A port the app needs is held by a process Forge will not stop."""


# Where a port picked now and bound later is safe: below Linux's ephemeral range (32768-60999), from which the OS
# hands out ports bound to 0 and Ray picks its own random ones, and above Ray's worker ports (10002-19999).
SAFE_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def pick_port(host: str = "127.0.0.1") -> int:
    """A free port from SAFE_PORTS, never the same one twice in this process.

    A port the OS picks (bind to 0) comes from the ephemeral range, where any process's next outgoing connection or
    Ray's own random pick can take it before the program it was meant for binds it: Prometheus lost its port that
    way in a test run, between `forge up` picking it and starting it."""
    for _ in range(1000):
        port = random.randrange(SAFE_PORTS.start, SAFE_PORTS.stop)  # nosec B311: a port number, not a secret
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise PortInUse(f"no free port between {SAFE_PORTS.start} and {SAFE_PORTS.stop - 1}")


def _holders(port: int) -> list[psutil.Process]:
    out = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                out.append(psutil.Process(conn.pid))
            except psutil.NoSuchProcess:
                continue
    return out


def _orphaned_haproxy(proc: psutil.Process) -> bool:
    """HAProxy whose parent is gone, or is no Ray process (Serve's HAProxyManager actor starts it)."""
    try:
        if "haproxy" not in proc.name().lower():
            return False
        parent = proc.parent()
        if parent is None or parent.pid == 1:
            return True
        cmdline = " ".join(parent.cmdline())
        return "ray::" not in cmdline and "raylet" not in cmdline and "ray/" not in cmdline
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def haproxy_ports() -> dict[str, int]:
    """The ports Serve's HAProxy holds beside the app's ({what: port}), as Ray reads them from the environment."""
    return {"HAProxy stats (RAY_SERVE_HAPROXY_STATS_PORT)": int(os.environ.get("RAY_SERVE_HAPROXY_STATS_PORT", 8404)),
            "HAProxy metrics (RAY_SERVE_HAPROXY_METRICS_PORT)": int(
                os.environ.get("RAY_SERVE_HAPROXY_METRICS_PORT", 9101))}


def free_ports(ports: dict[str, int], say: Callable[[str], None]) -> None:
    """Stop orphaned HAProxies on `ports` ({what: port}); raise PortInUse naming any other holder.

    Raises:
        PortInUse: a live process (not an orphaned HAProxy) listens on one of the ports.
    """
    for what, port in ports.items():
        for proc in _holders(port):
            if proc.pid == os.getpid():
                continue
            if _orphaned_haproxy(proc):
                say(f"stopping an orphaned HAProxy (pid {proc.pid}) on port {port}: its Ray cluster is gone")
                proc.terminate()
                try:
                    proc.wait(10)
                except psutil.TimeoutExpired:
                    proc.kill()
                continue
            raise PortInUse(f"{what}: port {port} is held by {proc.name()} (pid {proc.pid}); stop it or choose "
                            "another port")
