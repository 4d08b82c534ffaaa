"""The processes `forge up` starts, watched while the stack comes up.

Each runs in a session of its own (its process group is what `forge down` stops) with its output in a log file of
the stack folder. Waiting for one to answer also watches all of them: a process that exits fails the wait within
a second, naming it with the last lines of its log, instead of the wait running out its timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forge.errors import ForgeError

TAIL_LINES = 15


class StackError(ForgeError):
    """A process of the stack exited or never answered; everything the run started has been stopped."""


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a log, indented for the terminal."""
    try:
        text = path.read_text(errors="replace").rstrip().splitlines()[-lines:]
    except OSError:
        return "    (no log)"
    return "\n".join(f"    {line}" for line in text) or "    (empty log)"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path


class Supervisor:
    """Starts the stack's processes and watches them until it is up."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.running: dict[str, Process] = {}

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> None:
        log = self.folder / f"{name}.log"
        with log.open("w") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,  # nosec B603: our binaries, our paths
                                     start_new_session=True, env={**os.environ, **(env or {})})
        self.running[name] = Process(name, popen, log)

    def check(self) -> None:
        """Raise StackError naming the first process that has exited, with its log's last lines."""
        for p in self.running.values():
            code = p.popen.poll()
            if code is not None:
                raise StackError(f"{p.name} exited (code {code}) while the stack was starting; the last lines of "
                                 f"{p.log}:\n{tail(p.log)}")

    def wait(self, name: str, url: str, timeout: float, headers: dict | None = None,
             ready: Callable[[int], bool] = lambda code: code < 500) -> None:
        """Until `url` answers (`ready` on its status), watching every process; StackError otherwise."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                if ready(httpx.get(url, timeout=2, headers=headers).status_code):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.check()
        log = self.running[name].log if name in self.running else None
        raise StackError(f"{name} did not answer {url} within {timeout:.0f} s"
                         + (f"; the last lines of {log}:\n{tail(log)}" if log else ""))

    def pids(self) -> dict[str, int]:
        return {name: p.popen.pid for name, p in self.running.items()}


def stop_groups(pids: dict[str, int], grace: float = 20) -> list[str]:
    """SIGTERM each recorded process group, newest first, then SIGKILL what is left; returns what was stopped."""
    stopped = []
    for name, pid in reversed(list(pids.items())):
        try:
            os.killpg(pid, signal.SIGTERM)
            stopped.append(name)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + grace
    for pid in pids.values():
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.2)
        if group_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return stopped


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
