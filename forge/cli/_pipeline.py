"""The pipeline's commands: init, validate, train, run, predict, drift, retrain."""

from __future__ import annotations

import os

import typer

from forge.cli._common import ConfigOpt, JsonOpt, StrictOpt, cfg_of, command, err, rows_progress, say, start_ray
from forge.errors import CheckFailed


def register(app: typer.Typer) -> None:
    for fn in (init, validate, train, run, predict, drift, retrain):
        app.command(fn.__name__)(command(fn))


def init(data: str = typer.Argument(..., help="A data file to infer the schema from."),
         target: str = typer.Option(..., "--target", help="Column to predict."),
         output: str = typer.Option("forge.yaml", "-o", "--output", help="Where to write the config."),
         name: str = typer.Option(None, "--name", help="Project / model name; default: the file's stem."),
         as_json: bool = JsonOpt):
    """Write a starter forge.yaml with the inferred schema."""
    from forge.data.starter import write_starter_config

    out, inferred = write_starter_config(data, target, output, name, connect=start_ray)
    how = "a uniform sample of" if inferred.sampled else "every one of"
    say(f"read {how} {inferred.rows_read} rows; wrote {out} ({len(inferred.schema)} columns)")
    for col, note in inferred.notes.items():
        say(f"column {col!r}: {note}")
    return {"config_path": str(out), "rows_read": inferred.rows_read, "sampled": inferred.sampled}


def validate(config: str = ConfigOpt, as_json: bool = JsonOpt, strict: bool = StrictOpt):
    """Ingest + validate + version the configured data."""
    from forge.data.ingest import validate_dataset
    from forge.data.loading import reads_in_process
    from forge.data.validation import report_lines

    cfg = cfg_of(config)
    start_ray(cfg, ray=False)  # the workspace and tracking checks first: they name the setting that is wrong
    if not reads_in_process(cfg):
        start_ray()
    say(f"validate: reading {cfg.data.source}")
    with rows_progress("validate") as progress:
        res = validate_dataset(cfg, progress=progress)
    say(f"validate: data version {res.dataset.version}; quarantine -> {res.quarantine_path}")
    for line in report_lines(res.report):
        err.print(line, markup=False, highlight=False)
    _strict_check(res.report, res.summary(), strict)
    return res.summary()


def _strict_check(report: dict, result: dict, strict: bool) -> None:
    """With --strict, feature warnings stop the command (exit 3) before anything is trained."""
    if strict and report.get("warnings"):
        raise CheckFailed(f"--strict: {len(report['warnings'])} feature warning(s); nothing was trained", result)


def train(config: str = ConfigOpt, data_version: str = typer.Option(None, "--data-version"),
          as_json: bool = JsonOpt):
    """Features + search + evaluate + register (+ gate/promote)."""
    from forge.pipelines.pipeline import train as do_train

    cfg = cfg_of(config)
    start_ray(cfg)
    return do_train(cfg, data_version, say=say)


def run(config: str = ConfigOpt, as_json: bool = JsonOpt, strict: bool = StrictOpt):
    """Validate then train: the whole pipeline."""
    from forge.pipelines.pipeline import run as do_run

    cfg = cfg_of(config)
    start_ray(cfg)
    with rows_progress("validate") as progress:
        return do_run(cfg, say=say, progress=progress,
                      before_training=lambda v: _strict_check(v.report, v.summary(), strict))


def predict(input: str = typer.Option(..., "--input", help="CSV / Parquet / JSON lines file or folder."),
            output: str = typer.Option(..., "--output", help="Parquet folder to write."),
            model: str = typer.Option("champion", "--model", help="Alias or version."),
            config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Batch inference with Ray Data."""
    from forge.pipelines.batch import batch_predict

    cfg = cfg_of(config)
    # a local path is relative to where the user typed it; a URI (s3://...) is where it says
    input, output = (p if "://" in p else os.path.abspath(p) for p in (input, output))
    from forge.training.tracking import check_tracking

    check_tracking(cfg)  # a dead tracking server fails here, in a second, whichever path the rows take
    return batch_predict(cfg, input, output, model, connect=lambda: start_ray(cfg))


def drift(current: str = typer.Option("log", "--current", help="A data file, or 'log' for the prediction log."),
          html: str = typer.Option(None, "--html", help="Write the HTML report here."),
          last: int = typer.Option(None, "--last", help="Prediction-log window in rows."),
          since: str = typer.Option(None, "--since", help="Prediction-log window by time: 90s, 30m, 6h, 7d."),
          fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help="Exit 3 on dataset drift."),
          config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Drift of a data set or of the prediction log against the training reference."""
    from forge.monitoring.monitor import parse_since, run_drift

    cfg = cfg_of(config)
    res = run_drift(cfg, current, html, last=last, since_s=parse_since(since) if since else None)
    say(f"drift: {res.drifted_features}/{res.n_features} features drifted (share {res.drift_share:.2f}); "
        f"dataset drift: {res.dataset_drift}")
    if fail_on_drift and res.dataset_drift:
        raise CheckFailed("dataset drift detected (--fail-on-drift)", res.to_dict())
    return res


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
    from forge.pipelines.schedule import run_schedule

    cfg = cfg_of(config)
    start_ray(cfg)

    def check(why: str | None = reason) -> dict:
        return do_retrain(cfg, if_drift=if_drift, reason=why, say=say, if_decay=if_decay)

    if not schedule:
        return check()
    return run_schedule(lambda: check(reason or "schedule"), cfg.retraining.schedule, every_s=every,
                        max_runs=max_runs, say=say)
