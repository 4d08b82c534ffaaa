"""The `forge` command line (typer). Every command takes -c/--config and --json.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage / config / schema, 3 a check the user asked to fail on.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
import traceback
from pathlib import Path

import typer
import yaml
from rich.console import Console

from forge._runtime import library_output

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Forge: the whole life of a model, on Ray.")
models_app = typer.Typer(no_args_is_help=True, help="The model registry.")
token_app = typer.Typer(no_args_is_help=True, help="JWTs for the serving API.")
ab_app = typer.Typer(no_args_is_help=True, help="A/B tests between variants.")
demo_app = typer.Typer(no_args_is_help=True, help="Demos on the local embedded default.")
labels_app = typer.Typer(no_args_is_help=True, help="Delayed ground truth for served predictions.")
log_app = typer.Typer(no_args_is_help=True, help="The prediction log.")
app.add_typer(models_app, name="models")
app.add_typer(token_app, name="token")
app.add_typer(ab_app, name="ab")
app.add_typer(demo_app, name="demo")
app.add_typer(labels_app, name="labels")
app.add_typer(log_app, name="log")

# Bound to the real stderr: while a command runs, library_output redirects sys.stdout/sys.stderr to its log.
err = Console(file=sys.stderr, soft_wrap=True)
ConfigOpt = typer.Option("forge.yaml", "-c", "--config", help="Path to forge.yaml.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object as the last line of stdout.")
StrictOpt = typer.Option(False, "--strict", help="Exit 3 on feature warnings (leakage, constant or ID-like columns).")


class CheckFailed(Exception):
    """A check the user asked to fail on (exit 3); carries the JSON result."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, default=str))
    else:
        for k, v in result.items():
            err.print(f"[bold]{k}[/bold]: {v if not isinstance(v, (dict, list)) else json.dumps(v, default=str)}")


def command(fn):
    """Map Forge's errors to exit codes and messages, and print the result."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from forge.config import ConfigError
        from forge.data.ingest import DataCheckError
        from forge.data.loading import SourceError
        from forge.storage import StorageError
        from forge.training.tracking import TrackingUnreachable

        as_json = kwargs.get("as_json", False)
        log = _library_log(fn.__name__, kwargs.get("config"))
        try:
            with _job_metrics(fn.__name__, kwargs.get("config")), library_output(log):
                result = fn(*args, **kwargs)
        except (ConfigError, SourceError, StorageError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        except DataCheckError as e:
            from forge.data.validation import report_lines

            err.print(f"[red]data checks failed:[/red] {e}")
            for c in e.report.get("dataset_checks", []):
                if not c["passed"]:
                    err.print(f"  {c['check']}: observed {c['observed']}, expected {c['expected']}")
            if "rows_in" in e.report:
                for line in report_lines(e.report):
                    err.print(line, markup=False, highlight=False)
            if as_json:
                print(json.dumps({"error": str(e), **{k: e.report.get(k) for k in ("rows_in", "rows_valid")}}))
            raise typer.Exit(1) from None
        except TrackingUnreachable as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from None
        except CheckFailed as e:
            err.print(f"[yellow]{e}[/yellow]")
            _emit(e.result, as_json)
            raise typer.Exit(3) from None
        except (FileNotFoundError, KeyError, ValueError) as e:
            if os.environ.get("FORGE_DEBUG"):
                traceback.print_exc()
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2 if isinstance(e, ValueError) else 1) from None
        finally:
            if log is not None and log.exists() and log.stat().st_size:
                err.print(f"[dim]forge: Ray, Tune and MLflow output: {log}[/dim]")
        if result is not None:
            _emit(result, as_json)

    return wrapper


def _library_log(name: str, config: str | None) -> Path | None:
    """Where a batch command's library output goes: logs/ in the workspace (on this node's disk)."""
    from forge.config import ConfigError, load_config
    from forge.storage import StorageError
    from forge.workspace import Workspace

    if name not in BATCH_JOBS or config is None:
        return None
    try:
        ws = Workspace.from_config(load_config(config))
        return ws.local_dir("logs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    except (ConfigError, StorageError, OSError):
        return None  # the command itself reports the problem


# Batch jobs push their run and process metrics when monitoring.pushgateway is set.
BATCH_JOBS = {"validate", "train", "run", "predict", "drift", "retrain"}


def _job_metrics(name: str, config: str | None):
    from contextlib import nullcontext

    from forge.config import ConfigError, load_config
    from forge.monitoring.job_metrics import job_metrics

    if name not in BATCH_JOBS or config is None:
        return nullcontext()
    try:
        cfg = load_config(config)
    except ConfigError:
        return nullcontext()  # the command itself reports the config error
    return job_metrics(cfg.monitoring.pushgateway, name, cfg.name)


def _cfg(path: str):
    from forge.config import load_config

    return load_config(path)


def _ray(cfg=None):
    """Start or join Ray; with a config, work from a folder that outlives the job.

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
    return init_ray()


@contextlib.contextmanager
def rows_progress(label: str):
    """A live count of the rows done and their rate on stderr (drawn only on a terminal), for streaming steps.

    The callback takes the rows done so far, or None when the step is over (the bar goes; what follows prints).
    stdout is left alone: it carries --json.
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


def _say(msg: str) -> None:
    """One of Forge's own lines on stderr (the text is shown as it is: values may hold brackets)."""
    from rich.markup import escape

    err.print(f"[cyan]forge[/cyan] {escape(msg)}", highlight=False)


@app.command()
@command
def init(data: str = typer.Argument(..., help="A data file to infer the schema from."),
         target: str = typer.Option(..., "--target", help="Column to predict."),
         output: str = typer.Option("forge.yaml", "-o", "--output", help="Where to write the config."),
         name: str = typer.Option(None, "--name", help="Project / model name; default: the file's stem."),
         as_json: bool = JsonOpt):
    """Write a starter forge.yaml with the inferred schema."""
    from forge.config import ForgeConfig
    from forge.data.loading import source_format
    from forge.data.profile import infer_source_schema

    out = Path(output).resolve()
    if out.exists():
        raise ValueError(f"{out} exists; remove it or pass -o")
    src = Path(data).resolve()
    rel = str(src.relative_to(out.parent)) if src.is_relative_to(out.parent) else str(src)
    name = name or src.stem.replace("-", "_")
    raw = {"name": name, "data": {"source": rel, "target": target}}
    cfg = ForgeConfig.model_validate(raw)
    cfg.config_path = out
    if source_format(cfg) != "csv":  # a small CSV file is profiled in this process: no cluster to start
        _ray()
    inferred = infer_source_schema(cfg)
    schema = inferred.schema
    if target not in schema:
        raise ValueError(f"--target: column {target!r} is not in {data} ({', '.join(schema)})")
    raw["data"]["schema"] = {k: {"type": v.type, "nullable": v.nullable,
                                 **v.model_dump(exclude_none=True, exclude_defaults=True)} for k, v in schema.items()}
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    how = "a uniform sample of" if inferred.sampled else "every one of"
    _say(f"read {how} {inferred.rows_read} rows; wrote {out} ({len(schema)} columns)")
    for col, note in inferred.notes.items():
        _say(f"column {col!r}: {note}")
    return {"config_path": str(out), "rows_read": inferred.rows_read, "sampled": inferred.sampled}


@app.command()
@command
def validate(config: str = ConfigOpt, as_json: bool = JsonOpt, strict: bool = StrictOpt):
    """Ingest + validate + version the configured data."""
    from forge.data.ingest import validate_dataset

    cfg = _cfg(config)
    _ray(cfg)
    _say(f"validate: reading {cfg.data.source}")
    with rows_progress("validate") as progress:
        res = validate_dataset(cfg, progress=progress)
    from forge.data.validation import report_lines

    _say(f"validate: data version {res.dataset.version}; quarantine -> {res.quarantine_path}")
    for line in report_lines(res.report):
        err.print(line, markup=False, highlight=False)
    _strict_check(res.report, res.summary(), strict)
    return res.summary()


def _strict_check(report: dict, result: dict, strict: bool) -> None:
    """With --strict, feature warnings stop the command (exit 3) before anything is trained."""
    if strict and report.get("warnings"):
        raise CheckFailed(f"--strict: {len(report['warnings'])} feature warning(s); nothing was trained", result)


@app.command()
@command
def train(config: str = ConfigOpt, data_version: str = typer.Option(None, "--data-version"),
          as_json: bool = JsonOpt):
    """Features + search + evaluate + register (+ gate/promote)."""
    from forge.pipelines.pipeline import train as do_train

    cfg = _cfg(config)
    _ray(cfg)
    return do_train(cfg, data_version, say=_say)


@app.command()
@command
def run(config: str = ConfigOpt, as_json: bool = JsonOpt, strict: bool = StrictOpt):
    """Validate then train: the whole pipeline."""
    from forge.pipelines.pipeline import run as do_run

    cfg = _cfg(config)
    _ray(cfg)
    with rows_progress("validate") as progress:
        return do_run(cfg, say=_say, progress=progress,
                      before_training=lambda v: _strict_check(v.report, v.summary(), strict))


def _client(cfg):
    from mlflow import MlflowClient

    from forge.training.tracking import setup

    setup(cfg)
    return MlflowClient()


@models_app.command("list")
@command
def models_list(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Registered versions with aliases, data versions and metrics."""
    from forge.registry.registry import list_versions

    cfg = _cfg(config)
    return {"model_name": cfg.name, "versions": list_versions(_client(cfg), cfg.name)}


@models_app.command("show")
@command
def models_show(version: str = typer.Argument(..., help="Version number or alias."), config: str = ConfigOpt,
                as_json: bool = JsonOpt):
    """A version's lineage: model -> run -> data version -> source."""
    from forge.registry.registry import lineage

    cfg = _cfg(config)
    client = _client(cfg)
    if not version.isdigit():
        version = client.get_model_version_by_alias(cfg.name, version).version
    return lineage(client, cfg.name, version)


@models_app.command("promote")
@command
def models_promote(version: str = typer.Argument(...), config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Make VERSION the champion by hand (the old one becomes @previous)."""
    from forge.registry.registry import promote

    cfg = _cfg(config)
    old = promote(_client(cfg), cfg.name, version)
    return {"model_name": cfg.name, "champion": version, "previous": old}


@app.command("serve")
@command
def serve_cmd(action: str = typer.Argument("start", help="start (default) or stop."),
              port: int = typer.Option(None, "--port", help="HTTP port; default serving.port."),
              detach: bool = typer.Option(False, "--detach", help="Deploy and return (needs a running cluster; "
                                                                   "starts a local `ray start --head` if none)."),
              config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Deploy the Serve app on the local or given Ray cluster (`forge serve stop` shuts it down gracefully)."""
    from forge.serving import deploy

    cfg = _cfg(config)
    if action == "stop":
        return deploy.stop(cfg)
    if action != "start":
        raise ValueError(f"unknown action {action!r}: use start or stop")
    return deploy.start(cfg, port=port, detach=detach, say=_say)


@token_app.command("create")
@command
def token_create(scope: list[str] = typer.Option(["predict"], "--scope", help="predict and/or admin."),
                 ttl: int = typer.Option(3600, "--ttl", help="Seconds until the token expires."),
                 sub: str = typer.Option("forge-cli", "--sub", help="Subject claim."),
                 config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Print a JWT signed with the configured secret."""
    from forge.serving.auth import Settings, create_token

    cfg = _cfg(config)
    scopes = [x for s in scope for x in s.split()]
    token = create_token(Settings.from_config(cfg.serving.auth.model_copy(update={"enabled": True})), sub, scopes, ttl)
    if not as_json:
        print(token)
        return None
    return {"token": token, "scope": " ".join(scopes), "expires_in": ttl}


@app.command()
@command
def predict(input: str = typer.Option(..., "--input", help="CSV / Parquet / JSON lines file or folder."),
            output: str = typer.Option(..., "--output", help="Parquet folder to write."),
            model: str = typer.Option("champion", "--model", help="Alias or version."),
            config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Batch inference with Ray Data."""
    from forge.pipelines.batch import batch_predict

    cfg = _cfg(config)
    input, output = os.path.abspath(input), os.path.abspath(output)  # relative to where the user typed them
    _ray(cfg)
    return batch_predict(cfg, input, output, model)


@app.command()
@command
def drift(current: str = typer.Option("log", "--current", help="A data file, or 'log' for the prediction log."),
          html: str = typer.Option(None, "--html", help="Write the HTML report here."),
          last: int = typer.Option(None, "--last", help="Prediction-log window in rows."),
          since: str = typer.Option(None, "--since", help="Prediction-log window by time: 90s, 30m, 6h, 7d."),
          fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help="Exit 3 on dataset drift."),
          config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Drift of a data set or of the prediction log against the training reference."""
    from forge.monitoring.monitor import parse_since, run_drift

    cfg = _cfg(config)
    res = run_drift(cfg, current, html, last=last, since_s=parse_since(since) if since else None)
    _say(f"drift: {res['drifted_features']}/{res['n_features']} features drifted (share {res['drift_share']:.2f}); "
         f"dataset drift: {res['dataset_drift']}")
    if fail_on_drift and res["dataset_drift"]:
        raise CheckFailed("dataset drift detected (--fail-on-drift)", res)
    return res


@app.command()
@command
def retrain(if_drift: bool = typer.Option(False, "--if-drift", help="Only when the prediction log drifted."),
            if_decay: bool = typer.Option(False, "--if-decay",
                                          help="Only when the live metric (delayed labels) fell by "
                                               "retraining.performance_drop; with --if-drift: either."),
            reason: str = typer.Option(None, "--reason", help="Why (recorded in MLflow), e.g. schedule."),
            schedule: bool = typer.Option(False, "--schedule",
                                          help="Keep running: one check at each retraining.schedule (cron, UTC) "
                                               "time; the local equivalent of the CronJob in kuberay/."),
            every: float = typer.Option(None, "--every", help="With --schedule: every this many seconds instead."),
            max_runs: int = typer.Option(None, "--max-runs", help="With --schedule: stop after this many checks."),
            config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Retraining through the gate."""
    from forge.pipelines.retrain import retrain as do_retrain

    cfg = _cfg(config)
    _ray(cfg)
    if not schedule:
        return do_retrain(cfg, if_drift=if_drift, reason=reason, say=_say, if_decay=if_decay)
    from forge.pipelines.schedule import run_schedule

    def check() -> dict:
        return do_retrain(cfg, if_drift=if_drift, reason=reason or "schedule", say=_say, if_decay=if_decay)

    return run_schedule(check, cfg.retraining.schedule, every_s=every, max_runs=max_runs, say=_say)


@ab_app.command("report")
@command
def ab_report(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Per variant: traffic share + SRM check, primary metric with a 95% CI, guardrails, verdict."""
    from forge.monitoring.ab import ab_report as report

    return report(_cfg(config))


@ab_app.command("set")
@command
def ab_set(variant: list[str] = typer.Option(None, "--variant", help="NAME=ALIAS_OR_VERSION:WEIGHT, repeatable."),
           shadow: str = typer.Option(None, "--shadow", help="Alias or version that gets a copy of traffic."),
           experiment: str = typer.Option("default", "--experiment", help="Experiment id (assignment salt)."),
           reset: bool = typer.Option(False, "--reset", help="Back to serving.traffic from forge.yaml."),
           config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Change the variants of the running app, without a restart (replicas pick it up on their next poll)."""
    from forge.config import TrafficConfig, Variant
    from forge.serving.replica import set_traffic

    cfg = _cfg(config)
    if reset:
        set_traffic(cfg, None)
        return {"traffic": cfg.serving.traffic.model_dump()}
    variants = []
    for spec in variant or []:
        name, _, rest = spec.partition("=")
        model, _, weight = rest.partition(":")
        if not name or not model:
            raise ValueError(f"--variant {spec!r}: expected NAME=ALIAS_OR_VERSION[:WEIGHT]")
        variants.append(Variant(name=name, model=model, weight=float(weight or 1)))
    traffic = TrafficConfig(experiment_id=experiment, variants=variants or cfg.serving.traffic.variants,
                            shadow=shadow, key_header=cfg.serving.traffic.key_header,
                            key_field=cfg.serving.traffic.key_field)
    set_traffic(cfg, traffic)
    return {"traffic": traffic.model_dump()}


@labels_app.command("add")
@command
def labels_add(path: str = typer.Argument(..., help="CSV / Parquet / JSON lines with request_id, label (and row)."),
               config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Store ground truth that arrived after the predictions, joined later on request id (and row)."""
    from forge.monitoring.labels import read_label_file, write_labels
    from forge.workspace import Workspace

    cfg = _cfg(config)
    out, n = write_labels(Workspace.from_config(cfg).labels(cfg.name), read_label_file(path))
    return {"labels": n, "path": str(out)}


@labels_app.command("report")
@command
def labels_report(window: int = typer.Option(None, "--window", help="Newest labelled predictions to use."),
                  config: str = ConfigOpt, as_json: bool = JsonOpt):
    """The live model's realised metric over labelled predictions, beside its test-time metric."""
    from forge.monitoring.labels import decayed, live_performance

    cfg = _cfg(config)
    perf = live_performance(cfg, window)
    return {**perf, "decayed": decayed(perf, cfg.retraining.performance_drop)}


@demo_app.command("quickstart")
@command
def demo_quickstart(config: str = ConfigOpt, rows: int = typer.Option(4000, "--rows"), as_json: bool = JsonOpt):
    """Generate data, run the pipeline, serve it, answer sample requests, shut down."""
    from forge.pipelines.demo import quickstart

    return quickstart(config, rows, say=_say)


@demo_app.command("loop")
@command
def demo_loop(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Serve, shift the traffic, watch drift rise, retrain through the gate, watch the app swap."""
    from forge.pipelines.demo import loop

    out = loop(config, say=_say)
    return {k: v for k, v in out.items() if k not in ("auth_header", "sample")}  # no bearer token in logs


def main() -> None:
    from forge._runtime import serve_defaults

    serve_defaults()  # before anything imports ray.serve
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()


@log_app.command("recover")
@command
def log_recover(config: str = ConfigOpt, folder: str = typer.Option(
        None, "--dir", help="Write-ahead folder to sweep; default: this node's (FORGE_LOCAL_DIR)."),
        as_json: bool = JsonOpt):
    """Turn the write-ahead segments that dead replicas left on this node into Parquet in the workspace.

    Run it where a killed replica's segments survive: a pod that comes back with the same node-local volume
    (an init container), or by hand after a crash.
    """
    from forge.monitoring.prediction_log import recover
    from forge.workspace import Workspace

    cfg = _cfg(config)
    ws = Workspace.from_config(cfg)
    dest = ws.predictions(cfg.name)
    wal = Path(folder) if folder else (Path(dest) if dest.is_local else ws.local_dir("wal", cfg.name))
    n = recover(wal, dest)
    _say(f"recovered {n} prediction-log records from {wal} into {dest}")
    return {"recovered": n, "path": str(dest)}
