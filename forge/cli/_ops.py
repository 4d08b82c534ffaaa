"""Operating a served model: the registry, the app, tokens, A/B traffic, labels, the prediction log, demos."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from forge.cli._common import ConfigOpt, JsonOpt, cfg_of, command, err, say
from forge.errors import UsageError

models_app = typer.Typer(no_args_is_help=True, help="The model registry.")
token_app = typer.Typer(no_args_is_help=True, help="JWTs for the serving API.")
ab_app = typer.Typer(no_args_is_help=True, help="A/B tests between variants.")
demo_app = typer.Typer(no_args_is_help=True, help="Demos on the local embedded default.")
labels_app = typer.Typer(no_args_is_help=True, help="Delayed ground truth for served predictions.")
log_app = typer.Typer(no_args_is_help=True, help="The prediction log.")
experiments_app = typer.Typer(no_args_is_help=True, help="Tune searches: trials, early stops, learning curves.")


def register(app: typer.Typer) -> None:
    for name, sub in (("models", models_app), ("token", token_app), ("ab", ab_app), ("demo", demo_app),
                      ("labels", labels_app), ("log", log_app), ("experiments", experiments_app)):
        app.add_typer(sub, name=name)
    app.command("serve")(command(serve_cmd))
    app.command("up")(command(up_cmd))
    app.command("down")(command(down_cmd))


def _registry(config: str):
    from forge.registry.client import Registry

    return Registry.of(cfg_of(config))


@models_app.command("list")
@command
def models_list(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Registered versions with aliases, data versions and metrics."""
    registry = _registry(config)
    return {"model_name": registry.name, "versions": registry.versions()}


@models_app.command("show")
@command
def models_show(version: str = typer.Argument(..., help="Version number or alias."), config: str = ConfigOpt,
                as_json: bool = JsonOpt):
    """A version's lineage: model -> run -> data version -> source."""
    return _registry(config).lineage(version)


@models_app.command("promote")
@command
def models_promote(version: str = typer.Argument(...), config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Make VERSION the champion by hand (the old one becomes @previous)."""
    registry = _registry(config)
    old = registry.promote(registry.require(version))
    return {"model_name": registry.name, "champion": version, "previous": old}


@experiments_app.command("list")
@command
def experiments_list(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Searches, newest first: when, how many trials, the best validation metric and the winning family."""
    from forge.training.experiments import list_searches

    cfg = cfg_of(config)
    return {"experiment": cfg.name, "searches": [
        {k: v for k, v in s.to_dict().items() if k != "trials"} for s in list_searches(cfg)]}


@experiments_app.command("show")
@command
def experiments_show(run: str = typer.Argument(None, help="The search's MLflow run id; default the newest."),
                     html: str = typer.Option(None, "--html", help="Write the HTML report here (and log it to MLflow)."),
                     config: str = ConfigOpt, as_json: bool = JsonOpt):
    """One search's trials: family, parameters, status (completed, stopped early by ASHA, errored), iterations,
    wall time and validation metric; the best per family and the winner."""
    from forge.training.experiments import higher_is_better, show_search

    cfg = cfg_of(config)
    search = show_search(cfg, run)
    if not as_json:
        _trials_table(search)
    best = search.best_per_family(higher_is_better(search.metric))
    out = {"run_id": search.run_id, "name": search.name, "metric": search.metric, "winner": search.winner,
           "tensorboard": f"tensorboard --logdir {search.tune_folder}" if search.tune_folder else None,
           "best_per_family": {f: {"run_id": t.run_id, "val_metric": t.val_metric} for f, t in best.items()},
           "trials": [{k: v for k, v in asdict(t).items() if k != "curve"} for t in search.trials]}
    if html:
        from forge.training.experiment_report import write_report

        out["html_path"] = write_report(cfg, search, html)
    return out if as_json else {k: out[k] for k in ("run_id", "metric", "winner", "best_per_family", "tensorboard",
                                                    "html_path") if k in out}


def _trials_table(search) -> None:
    from rich.table import Table

    table = Table(title=f"search {search.name} ({search.n_trials} trials, {search.started})")
    for col in ("run", "family", "parameters", "status", "iter", "wall s", f"val {search.metric or ''}"):
        table.add_column(col)
    for t in search.trials:
        table.add_row(t.run_id[:8], t.family, ", ".join(f"{k}={v}" for k, v in sorted(t.params.items())), t.status,
                      str(t.iterations), "" if t.wall_s is None else f"{t.wall_s:.1f}",
                      "" if t.val_metric is None else f"{t.val_metric:.4f}")
    err.print(table)


def serve_cmd(action: str = typer.Argument("start", help="start (default) or stop."),
              port: int = typer.Option(None, "--port", help="HTTP port; default serving.port."),
              detach: bool = typer.Option(False, "--detach", help="Deploy and return (needs a running cluster; "
                                                                   "starts a local `ray start --head` if none)."),
              config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Deploy the Serve app on the local or given Ray cluster (`forge serve stop` shuts it down gracefully)."""
    from forge.serving import deploy

    cfg = cfg_of(config)
    if action == "stop":
        return deploy.stop(cfg)
    if action != "start":
        raise UsageError(f"unknown action {action!r}: use start or stop")
    return deploy.start(cfg, port=port, detach=detach, say=say)


@token_app.command("create")
@command
def token_create(scope: list[str] = typer.Option(["predict"], "--scope", help="predict and/or admin."),
                 ttl: int = typer.Option(3600, "--ttl", help="Seconds until the token expires "
                                                             "(at most serving.auth.max_ttl_s)."),
                 sub: str = typer.Option("forge-cli", "--sub", help="Subject claim."),
                 dev: bool = typer.Option(False, "--dev", help="Sign with the workspace's local development secret, "
                                                               "as `forge up` and the demos serve (dev mode)."),
                 config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Print a JWT signed with the configured secret (FORGE_JWT_SECRET, or in dev mode the local one)."""
    from forge.serving.auth import create_token, settings_for

    cfg = cfg_of(config)
    auth = cfg.serving.auth.model_copy(update={"enabled": True, "dev_mode": cfg.serving.auth.dev_mode or dev})
    scopes = [x for s in scope for x in s.split()]
    token = create_token(settings_for(cfg.model_copy(update={"serving": cfg.serving.model_copy(
        update={"auth": auth})})), sub, scopes, ttl)
    if not as_json:
        print(token)
        return None
    return {"token": token, "scope": " ".join(scopes), "expires_in": ttl}


@ab_app.command("report")
@command
def ab_report(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Per variant: traffic share + SRM check, primary metric with a 95% CI, guardrails, verdict."""
    from forge.monitoring.ab import ab_report as report

    return report(cfg_of(config))


@ab_app.command("set")
@command
def ab_set(variant: list[str] = typer.Option(None, "--variant", help="NAME=ALIAS_OR_VERSION:WEIGHT, repeatable."),
           shadow: str = typer.Option(None, "--shadow", help="Alias or version that gets a copy of traffic."),
           experiment: str = typer.Option("default", "--experiment", help="Experiment id (assignment salt)."),
           reset: bool = typer.Option(False, "--reset", help="Back to serving.traffic from forge.yaml."),
           config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Change the variants of the running app, without a restart (replicas pick it up on their next poll)."""
    from forge.config import Variant
    from forge.registry.client import Registry

    cfg = cfg_of(config)
    registry = Registry.of(cfg)
    if reset:
        registry.set_traffic(None)
        return {"traffic": cfg.serving.traffic.model_dump()}
    update = {"experiment_id": experiment, "shadow": shadow}
    if variant:
        update["variants"] = [Variant.parse(spec) for spec in variant]
    traffic = cfg.serving.traffic.model_copy(update=update)
    registry.set_traffic(traffic)
    return {"traffic": traffic.model_dump()}


@labels_app.command("add")
@command
def labels_add(path: str = typer.Argument(..., help="CSV / Parquet / JSON lines with request_id, label (and row)."),
               config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Store ground truth that arrived after the predictions, joined later on request id (and row)."""
    from forge.monitoring.labels import read_label_file, write_labels
    from forge.workspace import Workspace

    cfg = cfg_of(config)
    out, n = write_labels(Workspace.from_config(cfg).labels(cfg.name), read_label_file(path))
    return {"labels": n, "path": str(out)}


@labels_app.command("report")
@command
def labels_report(window: int = typer.Option(None, "--window", help="Newest labelled predictions to use."),
                  config: str = ConfigOpt, as_json: bool = JsonOpt):
    """The live model's realised metric over labelled predictions, beside its test-time metric."""
    from forge.monitoring.labels import live_performance

    cfg = cfg_of(config)
    return live_performance(cfg, window).with_decay(cfg.retraining.performance_drop)


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

    cfg = cfg_of(config)
    dest, wal = Workspace.from_config(cfg).prediction_log(cfg)
    wal = Path(folder) if folder else wal
    n = recover(wal, dest)
    say(f"recovered {n} prediction-log records from {wal} into {dest}")
    return {"recovered": n, "path": str(dest)}


@demo_app.command("quickstart")
@command
def demo_quickstart(config: str = ConfigOpt, rows: int = typer.Option(4000, "--rows"), as_json: bool = JsonOpt):
    """Generate data, run the pipeline, serve it, answer sample requests, shut down."""
    from forge.pipelines.demo import quickstart

    return quickstart(config, rows, say=say)


@demo_app.command("loop")
@command
def demo_loop(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Serve, shift the traffic, watch drift rise, retrain through the gate, watch the app swap."""
    from forge.pipelines.demo import loop

    out = loop(config, say=say)
    return {k: v for k, v in out.items() if k not in ("auth_header", "sample")}  # no bearer token in logs


def up_cmd(grafana_url: str = typer.Option(None, "--grafana-url", help="A Grafana of yours (its URL as the browser "
                                           "reaches it): the Ray dashboard's Metrics page embeds its panels."),
           config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Start the local stack in dev mode: Ray head and dashboard (and the Serve app when a champion exists), the
    MLflow UI, Prometheus with Forge's rules, Alertmanager and the Pushgateway. Ports: monitoring.stack.*.
    Run again while it is up, it prints the table again."""
    from forge.pipelines.stack import up

    return up(cfg_of(config), say, grafana_url=grafana_url)


def down_cmd(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Stop everything `forge up` started (and only that); running it twice is fine."""
    from forge.pipelines.stack import down

    return down(cfg_of(config))
