"""How the suite runs: the order of its resource classes, and the audit that holds `integration` to its meaning.

Order. A test's class comes from what it uses, and a module runs whole at its highest class (its module-scoped
fixtures are set up once):
  0 `cluster`: starts Ray clusters of its own (`ray start`, a job's own embedded Ray), before the session's exists;
  1 no Ray;
  2 the session's Ray (`ray_session`);
  3 the session's trained project, not served;
  4 the trained project served (`served`): a Serve app holds CPU and polls the registry, so it comes late;
  5 `last`: checks of the whole run (nothing it wrote is in the checkout).

Audit. A test without the `integration` mark must start no Ray and no server: `make test-fast` runs exactly those
and promises that. While such a test runs, every process started is recorded; a server among them (Ray, Prometheus,
Alertmanager, the Pushgateway, MLflow, PostgreSQL, moto, a `forge` command), or a Ray initialised in this process,
fails it, naming what it started.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Session fixtures that start Ray or a server: a test that uses one is an integration test.
STARTING_FIXTURES = {"ray_session", "trained_project", "served", "s3_server"}
SERVER_BINARIES = {"ray", "raylet", "gcs_server", "prometheus", "prometheus-alertmanager", "prometheus-pushgateway",
                   "mlflow", "postgres", "pg_ctl", "initdb", "haproxy", "forge", "serve"}
SERVER_MODULES = {"moto.server", "mlflow", "forge.cli", "ray"}


def resource_class(item) -> int:
    names = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("last"):
        return 5
    if "served" in names:
        return 4
    if "trained_project" in names:
        return 3
    if "ray_session" in names:
        return 2
    return 0 if item.get_closest_marker("cluster") else 1


def unmarked(items: list) -> list[str]:
    """Tests that use a fixture starting Ray or a server without saying so (`integration`)."""
    return [it.nodeid for it in items if STARTING_FIXTURES & set(getattr(it, "fixturenames", ()))
            and it.get_closest_marker("integration") is None]


def order(items: list) -> list:
    """Items by the class of their module (its highest), stable: modules stay whole and in their own order."""
    module_class: dict[str, int] = {}
    for item in items:
        key = str(item.path)
        module_class[key] = max(module_class.get(key, 0), resource_class(item))
    return sorted(items, key=lambda it: module_class[str(it.path)])


def servers_in(argvs: list[list[str]]) -> list[str]:
    """The servers (or Ray) among these started processes, as their command lines."""
    found = []
    for argv in argvs:
        if not argv:
            continue
        name = Path(argv[0]).name
        module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None
        if name in SERVER_BINARIES or module in SERVER_MODULES:
            found.append(" ".join(argv)[:200])
    return found


class Audit:
    """Records the processes started while it is on (subprocess.Popen, which subprocess.run and Ray use too)."""

    def __init__(self) -> None:
        self.on = False
        self.started: list[list[str]] = []
        self._init = subprocess.Popen.__init__

    def install(self) -> None:
        audit, real = self, self._init

        def recording_init(popen, args, *a, **kw):
            if audit.on:
                argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
                audit.started.append([os.fsdecode(x) if isinstance(x, (bytes, os.PathLike)) else str(x)
                                      for x in argv])
            real(popen, args, *a, **kw)

        subprocess.Popen.__init__ = recording_init

    def begin(self) -> None:
        self.started, self.on = [], True

    def end(self, ray_was_up: bool) -> list[str]:
        """What the audited span started that a fast test may not: servers, and Ray if it came up."""
        self.on = False
        found = servers_in(self.started)
        if not ray_was_up and _ray_up():
            found.append("a Ray cluster in this process (ray.init)")
        return found


def _ray_up() -> bool:
    import sys

    ray = sys.modules.get("ray")
    return bool(ray is not None and getattr(ray, "is_initialized", lambda: False)())


def checkout_files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of the checkout git tracks or would track (not ignored): path -> (mtime in ns, size)."""
    r = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-500:]
    out = {}
    for name in filter(None, r.stdout.decode().split("\0")):
        try:
            st = (root / name).stat()
        except FileNotFoundError:  # tracked, deleted in the working tree
            continue
        out[name] = (st.st_mtime_ns, st.st_size)
    return out
