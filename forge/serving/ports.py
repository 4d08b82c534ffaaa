"""The ports a local Serve app needs, checked before Ray starts: after `ray stop --force` (what a crashed node or
an OOM-killed raylet looks like), Serve's HAProxy can outlive its cluster and keep 8000, 8404 and 9101. An
orphaned HAProxy (its parent is no Ray process) is stopped; anything else holding a port is named, not killed.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import psutil

from forge.errors import ForgeError


class PortInUse(ForgeError):
    """A port the app needs is held by a process Forge will not stop."""


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
