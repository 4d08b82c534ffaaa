"""forge/serving/ports.py: what a dead cluster's HAProxy left on the app's ports is stopped; anything else is named."""

import socket
import subprocess
import sys
import time

import psutil
import pytest

from forge.serving.ports import PortInUse, free_ports
from tests.conftest import free_port

pytestmark = pytest.mark.integration  # each test starts a process that listens on a port

LISTEN = "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(120)"


def _listening(port: int, timeout: float = 10) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def test_an_orphaned_haproxy_is_stopped(tmp_path):
    port = free_port()
    fake = tmp_path / "haproxy"  # the process is called haproxy, as Serve's is
    fake.symlink_to(sys.executable)
    # Started through a shell that exits at once: the listener's parent is gone, as after `ray stop --force`.
    subprocess.run(["sh", "-c", f'"{fake}" -c "{LISTEN.format(port=port)}" >/dev/null 2>&1 &'], check=True)
    assert _listening(port)
    said = []
    free_ports({"serving.port": port}, said.append)
    assert said and "orphaned HAProxy" in said[0] and str(port) in said[0]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_any_other_holder_is_named_not_killed():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LISTEN.format(port=port)])
    try:
        assert _listening(port)
        with pytest.raises(PortInUse, match=rf"serving.port: port {port} is held by .* \(pid {proc.pid}\)"):
            free_ports({"serving.port": port}, print)
        assert psutil.pid_exists(proc.pid) and proc.poll() is None
    finally:
        proc.kill()
