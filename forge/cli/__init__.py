"""The `forge` command line (typer): a thin layer over the library. Every command takes -c/--config and --json.

Commands live by group: `_pipeline.py` (init ... retrain) and `_ops.py` (models, serve, token, ab, labels, log,
demo); `_common.py` holds what they share, including the error -> exit-code rules.
"""

from __future__ import annotations

import sys

import typer

from forge.cli import _ops, _pipeline
from forge.cli._common import err, rows_progress

__all__ = ["app", "main", "err", "rows_progress"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Forge: the whole life of a model, on Ray.")
_pipeline.register(app)
_ops.register(app)


def main() -> None:
    from forge._runtime import serve_defaults

    serve_defaults()  # before anything imports ray.serve
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
