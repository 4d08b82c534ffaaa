"""`forge init`: a starter forge.yaml whose schema is the profile of the data (types, nullability, categories)."""

from __future__ import annotations

from pathlib import Path

import yaml

from forge.config import ForgeConfig
from forge.data.profile import InferredSchema, infer_source_schema
from forge.errors import UsageError


def write_starter_config(data: str | Path, target: str, output: str | Path = "forge.yaml",
                         name: str | None = None, connect=None) -> tuple[Path, InferredSchema]:
    """Profile `data` and write a forge.yaml for predicting `target`; returns (path written, the profile).

    Args:
        connect: called before profiling a source that needs Ray (anything but a CSV file read in-process).
    Raises:
        UsageError: `output` exists, or `target` is not a column.
    """
    from forge.data.loading import source_format

    out = Path(output).resolve()
    if out.exists():
        raise UsageError(f"{out} exists; remove it or pass -o")
    src = Path(data).resolve()
    rel = str(src.relative_to(out.parent)) if src.is_relative_to(out.parent) else str(src)
    raw: dict = {"name": name or src.stem.replace("-", "_"), "data": {"source": rel, "target": target}}
    cfg = ForgeConfig.model_validate(raw)
    cfg.config_path = out
    if source_format(cfg) != "csv" and connect is not None:
        connect()
    inferred = infer_source_schema(cfg)
    if target not in inferred.schema:
        raise UsageError(f"--target: column {target!r} is not in {data} ({', '.join(inferred.schema)})")
    raw["data"]["schema"] = {k: {"type": v.type, "nullable": v.nullable,
                                 **v.model_dump(exclude_none=True, exclude_defaults=True)}
                             for k, v in inferred.schema.items()}
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out, inferred
