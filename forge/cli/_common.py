"""What every `forge` command shares: options, Forge's own lines on stderr, error -> exit code, the result.

Exit codes: 0 ok, 1 a runtime failure Forge understands (or a bug, with its traceback), 2 bad usage / config /
schema, 3 a check the user asked to fail on. Only Forge's own exceptions (`forge.errors`) become a one-line
message; anything else shows its traceback, shortened (FORGE_DEBUG=1 shows it whole).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

import typer
from rich.console import Console

from forge._runtime import library_output
from forge.errors import CheckFailed, ForgeError


class _Terminal(io.TextIOBase):
    """Where Forge's own lines go: the stderr the running command started with, since library_output sends
    sys.stderr to its log while the command runs; outside a command, sys.stderr as it is now (a test's in-process
    CliRunner swaps it per invocation)."""

    def __init__(self) -> None:
        self.stream = None

    def _out(self):
        return self.stream or sys.stderr

    def write(self, text: str) -> int:
        return self._out().write(text)

    def flush(self) -> None:
        self._out().flush()

    def isatty(self) -> bool:
        return self._out().isatty()


terminal = _Terminal()
err = Console(file=terminal, soft_wrap=True)
ConfigOpt = typer.Option("forge.yaml", "-c", "--config", help="Path to forge.yaml.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object as the last line of stdout.")
StrictOpt = typer.Option(False, "--strict", help="Exit 3 on feature warnings (leakage, constant or ID-like columns).")
# Batch jobs push their metrics when monitoring.pushgateway is set; they and the demos log library output to the
# workspace (`make demo` printed MLflow's registry lines, its UserWarnings and Ray's raylet warnings).
BATCH_JOBS = {"validate", "train", "run", "predict", "drift", "retrain"}
LOGGED = BATCH_JOBS | {"demo_quickstart", "demo_loop", "up_cmd"}
_CONFIGS: dict[str, object] = {}


def cfg_of(path: str):
    """forge.yaml, parsed once per invocation (the decorator and the command share it)."""
    from forge.config import load_config

    key = os.path.abspath(path)
    if key not in _CONFIGS:
        _CONFIGS[key] = load_config(path)
    return _CONFIGS[key]


def say(msg: str) -> None:
    """One of Forge's own lines on stderr (the text is shown as it is: values may hold brackets)."""
    from rich.markup import escape

    err.print(f"[cyan]forge[/cyan] {escape(msg)}", highlight=False)


def emit(result, as_json: bool) -> None:
    """The result at the edge: typed results become JSON here and nowhere earlier; one that has its own lines
    for people (`lines()`) prints them on stdout without --json."""
    if not as_json and hasattr(result, "lines"):
        print("\n".join(result.lines()), flush=True)
        return
    if hasattr(result, "to_dict"):
        result = result.to_dict()
    if as_json:
        print(json.dumps(result, default=str))
        return
    for k, v in result.items():
        err.print(f"[bold]{k}[/bold]: {v if not isinstance(v, (dict, list)) else json.dumps(v, default=str)}")


def command(fn):
    """Run a command with its library output logged, map Forge's errors to exit codes, print the result."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _CONFIGS.clear()  # one invocation's config: FORGE_* overrides may differ from the last (in-process runs)
        saved, terminal.stream = terminal.stream, sys.stderr
        try:
            _run(fn, args, kwargs)
        finally:
            terminal.stream = saved

    return wrapper


def _run(fn, args, kwargs) -> None:
    """One command: its library output logged, Forge's errors as exit codes, the result printed."""
    as_json = kwargs.get("as_json", False)
    cfg = _batch_config(fn.__name__, kwargs.get("config"))
    log = _library_log(fn.__name__, cfg)
    try:
        with _job_metrics(fn.__name__, cfg if fn.__name__ in BATCH_JOBS else None), library_output(log):
            result = fn(*args, **kwargs)
    except ForgeError as e:
        _report(e, as_json)
        raise typer.Exit(e.exit_code) from None
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as e:
        known = _known_library_error(e, cfg)
        if known is None:
            _traceback()
            raise typer.Exit(1) from None
        _report(known, as_json)
        raise typer.Exit(known.exit_code) from None
    finally:
        if log is not None and log.exists() and log.stat().st_size:
            err.print(f"[dim]forge: Ray, Tune and MLflow output: {log}[/dim]")
    if result is not None:
        emit(result, as_json)


def _known_library_error(e: Exception, cfg) -> ForgeError | None:
    """A library error that is the user's setting, not a bug: MLflow refusing the credentials."""
    from mlflow.exceptions import MlflowException

    if isinstance(e, MlflowException) and e.error_code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        from forge.training.tracking import auth_refused

        return auth_refused(getattr(cfg, "tracking_uri", None), 401 if e.error_code == "UNAUTHENTICATED" else 403)
    return None


def _report(e: ForgeError, as_json: bool) -> None:
    from forge.data.ingest import DataCheckError

    if isinstance(e, CheckFailed):
        err.print(f"[yellow]{e}[/yellow]")
        emit(e.result, as_json)
        return
    if isinstance(e, DataCheckError):
        from forge.data.validation import report_lines

        err.print(f"[red]data checks failed:[/red] {e}")
        for c in e.report.get("dataset_checks", []):
            if not c["passed"]:
                err.print(f"  {c['check']}: observed {c['observed']}, expected {c['expected']}")
        for line in report_lines(e.report) if "rows_in" in e.report else []:
            err.print(line, markup=False, highlight=False)
        if as_json:
            print(json.dumps({"error": str(e), **{k: e.report.get(k) for k in ("rows_in", "rows_valid")}}))
        return
    if os.environ.get("FORGE_DEBUG"):
        traceback.print_exc()
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)


def _traceback() -> None:
    """A bug, not a user's mistake: its traceback, the last frames only unless FORGE_DEBUG=1."""
    limit = None if os.environ.get("FORGE_DEBUG") else -4
    print("forge: unexpected error (a bug; FORGE_DEBUG=1 shows the whole traceback):", file=terminal)
    traceback.print_exc(limit=limit, file=terminal)


def _batch_config(name: str, config: str | None):
    from forge.config import ConfigError

    if name not in LOGGED or config is None:
        return None
    try:
        return cfg_of(config)
    except ConfigError:
        return None  # the command itself reports it


def _library_log(name: str, cfg) -> Path | None:
    """Where a batch command's library output goes: logs/ in the workspace (on this node's disk)."""
    from forge.workspace import Workspace

    if cfg is None:
        return None
    try:
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        return Workspace.from_config(cfg).local_dir("logs") / f"{name.removesuffix('_cmd')}-{stamp}.log"
    except (ForgeError, OSError):
        return None  # the command itself reports the problem


def _job_metrics(name: str, cfg):
    from forge.monitoring.job_metrics import job_metrics

    if cfg is None:
        return contextlib.nullcontext()
    return job_metrics(cfg.monitoring.pushgateway, name, cfg.name)


def start_ray(cfg=None, ray: bool = True):
    """Start or join Ray; with a config, check the workspace and tracking server and work from a folder that
    outlives the job (ray=False: only that, for a command whose work needs no cluster).

    Forge resolves paths against the config's folder, never the working directory, but libraries call
    getcwd(): Tune's ExperimentAnalysis failed with FileNotFoundError when Ray garbage-collected a job's
    `--working-dir` (where its forge.yaml was) under the driver once the trials on that node had ended.
    """
    from forge._runtime import init_ray

    if cfg is not None:
        import tempfile

        from forge.training.tracking import check_tracking
        from forge.workspace import Workspace

        inside_job_files = "runtime_resources" in cfg.base_dir.parts
        os.chdir(tempfile.gettempdir() if inside_job_files else cfg.base_dir)
        # Fail in a second, naming the setting and the endpoint, rather than deep in a Ray task or after
        # MLflow's minutes of retries.
        Workspace.from_config(cfg).root.check("workspace")
        check_tracking(cfg)
    return init_ray() if ray else None


@contextlib.contextmanager
def rows_progress(label: str):
    """A live count of the rows done and their rate on stderr (drawn only on a terminal), for streaming steps.

    The callback takes the rows done so far, or None when the step is over. stdout is left alone: it carries --json.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("forge {task.description}: {task.completed:,.0f} rows"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task(label, total=None, rate="")
        start = time.perf_counter()

        def update(rows: int | None) -> None:
            if rows is None:
                bar.stop()
                return
            bar.update(task, completed=rows, rate=f"{rows / max(time.perf_counter() - start, 1e-9):,.0f} rows/s")

        yield update
