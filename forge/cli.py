"""The `forge` command line (typer). Every command takes -c/--config and --json.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage / config / schema, 3 a check the user asked to fail on.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import typer
import yaml
from rich.console import Console

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Forge: the whole life of a model, on Ray.")
models_app = typer.Typer(no_args_is_help=True, help="The model registry.")
token_app = typer.Typer(no_args_is_help=True, help="JWTs for the serving API.")
ab_app = typer.Typer(no_args_is_help=True, help="A/B tests between variants.")
demo_app = typer.Typer(no_args_is_help=True, help="Demos on the local embedded default.")
app.add_typer(models_app, name="models")
app.add_typer(token_app, name="token")
app.add_typer(ab_app, name="ab")
app.add_typer(demo_app, name="demo")

err = Console(stderr=True)
ConfigOpt = typer.Option("forge.yaml", "-c", "--config", help="Path to forge.yaml.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object as the last line of stdout.")


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

        as_json = kwargs.get("as_json", False)
        try:
            result = fn(*args, **kwargs)
        except (ConfigError, SourceError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        except DataCheckError as e:
            err.print(f"[red]data checks failed:[/red] {e}")
            for c in e.report.get("dataset_checks", []):
                if not c["passed"]:
                    err.print(f"  {c['check']}: observed {c['observed']}, expected {c['expected']}")
            if as_json:
                print(json.dumps({"error": str(e), **{k: e.report.get(k) for k in ("rows_in", "rows_valid")}}))
            raise typer.Exit(1) from None
        except CheckFailed as e:
            err.print(f"[yellow]{e}[/yellow]")
            _emit(e.result, as_json)
            raise typer.Exit(3) from None
        except (FileNotFoundError, KeyError, ValueError) as e:
            err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2 if isinstance(e, ValueError) else 1) from None
        if result is not None:
            _emit(result, as_json)

    return wrapper


def _cfg(path: str):
    from forge.config import load_config

    return load_config(path)


def _ray():
    from forge._runtime import init_ray

    return init_ray()


def _say(msg: str) -> None:
    err.print(f"[cyan]forge[/cyan] {msg}")


@app.command()
@command
def init(data: str = typer.Argument(..., help="A data file to infer the schema from."),
         target: str = typer.Option(..., "--target", help="Column to predict."),
         output: str = typer.Option("forge.yaml", "-o", "--output", help="Where to write the config."),
         name: str = typer.Option(None, "--name", help="Project / model name; default: the file's stem."),
         as_json: bool = JsonOpt):
    """Write a starter forge.yaml with the inferred schema."""
    from forge.config import ForgeConfig
    from forge.data.ingest import resolve_schema
    from forge.data.validation import infer_schema  # noqa: F401  (documents where inference lives)

    out = Path(output).resolve()
    if out.exists():
        raise ValueError(f"{out} exists; remove it or pass -o")
    src = Path(data).resolve()
    rel = str(src.relative_to(out.parent)) if src.is_relative_to(out.parent) else str(src)
    name = name or src.stem.replace("-", "_")
    raw = {"name": name, "data": {"source": rel, "target": target}}
    cfg = ForgeConfig.model_validate(raw)
    cfg.config_path = out
    _ray()
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        schema = resolve_schema(cfg, Path(d))
    if target not in schema:
        raise ValueError(f"--target: column {target!r} is not in {data} ({', '.join(schema)})")
    raw["data"]["schema"] = {k: v.model_dump(exclude_none=True) for k, v in schema.items()}
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    _say(f"wrote {out} ({len(schema)} columns)")
    return {"config_path": str(out)}


@app.command()
@command
def validate(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Ingest + validate + version the configured data."""
    from forge.data.ingest import validate_dataset

    cfg = _cfg(config)
    _ray()
    _say(f"validate: reading {cfg.data.source}")
    res = validate_dataset(cfg, progress=lambda n: err.print(f"  {n} rows", end="\r"))
    _say(f"{res.rows_valid}/{res.rows_in} valid, {res.rows_quarantined} quarantined -> {res.quarantine_path}")
    for kind, info in res.report["row_failures"].items():
        err.print(f"  {info['count']:>7}  {kind}  e.g. {info['examples'][0]}")
    return res.summary()


@app.command()
@command
def train(config: str = ConfigOpt, data_version: str = typer.Option(None, "--data-version"),
          as_json: bool = JsonOpt):
    """Features + search + evaluate + register (+ gate/promote)."""
    from forge.pipelines.pipeline import train as do_train

    cfg = _cfg(config)
    _ray()
    return do_train(cfg, data_version, say=_say)


@app.command()
@command
def run(config: str = ConfigOpt, as_json: bool = JsonOpt):
    """Validate then train: the whole pipeline."""
    from forge.pipelines.pipeline import run as do_run

    cfg = _cfg(config)
    _ray()
    return do_run(cfg, say=_say)


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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
