"""Operating a served model: the registry, the app, tokens, A/B traffic, labels, the prediction log, demos."""

from __future__ import annotations

from pathlib import Path

import typer

from forge.cli._common import ConfigOpt, JsonOpt, cfg_of, command, say
from forge.errors import UsageError

models_app = typer.Typer(no_args_is_help=True, help="The model registry.")
token_app = typer.Typer(no_args_is_help=True, help="JWTs for the serving API.")
ab_app = typer.Typer(no_args_is_help=True, help="A/B tests between variants.")
demo_app = typer.Typer(no_args_is_help=True, help="Demos on the local embedded default.")
labels_app = typer.Typer(no_args_is_help=True, help="Delayed ground truth for served predictions.")
log_app = typer.Typer(no_args_is_help=True, help="The prediction log.")


def register(app: typer.Typer) -> None:
    for name, sub in (("models", models_app), ("token", token_app), ("ab", ab_app), ("demo", demo_app),
                      ("labels", labels_app), ("log", log_app)):
        app.add_typer(sub, name=name)
    app.command("serve")(command(serve_cmd))


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
                 config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Print a JWT signed with the configured secret."""
    from forge.serving.auth import Settings, create_token

    cfg = cfg_of(config)
    scopes = [x for s in scope for x in s.split()]
    token = create_token(Settings.from_config(cfg.serving.auth.model_copy(update={"enabled": True})), sub, scopes, ttl)
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
