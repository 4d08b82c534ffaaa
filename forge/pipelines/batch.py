"""Batch inference: a file or folder in, Parquet out, rows in = rows out.

Local files on a machine with no cluster to join are streamed through this process with Arrow (no cluster to
start; memory bounded by the few batches read ahead); object-store URIs, or a cluster given by RAY_ADDRESS, go
through Ray Data, whose read and predict tasks spread over the nodes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forge.config import ForgeConfig
from forge.data.formats import format_of
from forge.data.readahead import ReadAhead
from forge.errors import UsageError

if TYPE_CHECKING:  # imported in batch_predict, after the read-ahead starts: MLflow's import holds the GIL 1.5-2 s
    from forge.registry.client import ModelRef

BATCH_ROWS = 262_144


class _Predictor:
    """One model load per Ray Data actor (or per process), then batches through ForgeModel.predict_raw."""

    def __init__(self, model: ModelRef):
        self.model = model.load()

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        pred, proba = self.model.predict_raw(df)
        out = df.copy()
        out["prediction"] = pred
        out["score"] = self.model.score_value(pred, proba)
        return out


def _batches(src: str, fmt: str):
    """Arrow batches of a local file or folder; CSV read with its own type inference, block by block."""
    import pyarrow.dataset as pads

    if fmt == "csv" and not Path(src).is_dir():
        import pyarrow.csv as pacsv

        # Empty fields are nulls, as validation reads them: pyarrow's default made them "" (an unknown category).
        yield from pacsv.open_csv(src, read_options=pacsv.ReadOptions(block_size=64 << 20),
                                  convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        return
    yield from pads.dataset(src, format=fmt).to_batches(batch_size=BATCH_ROWS)


def _local(ahead: ReadAhead, dest: str, pinned: ModelRef) -> tuple[int, int]:
    predictor = _Predictor(pinned)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    rows_in = rows_out = 0
    writer = None
    try:
        for i, batch in enumerate(ahead.batches()):
            rows_in += batch.num_rows
            table = pa.Table.from_pandas(predictor(batch.to_pandas()), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(out / "part-00000.parquet", table.schema)
            writer.write_table(table.cast(writer.schema) if i else table)
            rows_out += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows_in, rows_out


def _on_ray(cfg: ForgeConfig, src: str, fmt: str, dest: str, pinned: ModelRef, concurrency: int) -> tuple[int, int]:
    import ray

    from forge.storage import filesystem_for

    store = cfg.object_store  # an s3:// input or output on MinIO or moto: the endpoint forge.yaml names
    (src_fs, src_path), (dest_fs, dest_path) = (filesystem_for(p, store.endpoint_url, store.region) for p in (src, dest))
    reader = {"csv": ray.data.read_csv, "json": ray.data.read_json}.get(fmt, ray.data.read_parquet)
    ds = reader(src_path, filesystem=src_fs)
    out = ds.map_batches(_Predictor, fn_constructor_kwargs={"model": pinned}, batch_format="pandas",
                         concurrency=concurrency, num_cpus=0.5)  # leaves the read tasks a share of small nodes
    out.write_parquet(dest_path, filesystem=dest_fs)
    return ds.count(), ray.data.read_parquet(dest_path, filesystem=dest_fs).count()


def batch_predict(cfg: ForgeConfig, input_path: str, output_path: str, model: str = "champion",
                  concurrency: int = 1, connect: Callable[[], object] | None = None) -> dict:
    """Predict every row of `input_path` (CSV, Parquet or JSON lines; file, folder or glob).

    Args:
        connect: starts or joins Ray, called only when the work goes through Ray Data.
    """
    src, dest = cfg.resolve(input_path), cfg.resolve(output_path)
    fmt = format_of(src, "parquet")
    local = "://" not in src and "*" not in src and not os.environ.get("RAY_ADDRESS")
    if local and not Path(src).exists():
        raise UsageError(f"--input: {input_path} does not exist")
    ahead = ReadAhead(lambda: _batches(src, fmt)) if local else None
    try:
        from forge.registry.client import Registry

        pinned = Registry.of(cfg).ref(model)  # the version, not the alias: every worker loads the same model
        if ahead is not None:
            rows_in, rows_out = _local(ahead, dest, pinned)
    except pa.ArrowInvalid as e:  # a malformed file: the user's to fix, not a crash
        raise UsageError(f"--input {input_path}: cannot be read as {fmt}: {e}") from None
    finally:
        if ahead is not None:
            ahead.close()
    if not local:
        if connect is not None:
            connect()
        rows_in, rows_out = _on_ray(cfg, src, fmt, dest, pinned, concurrency)
    return {"rows": rows_out, "rows_in": rows_in, "output_path": dest, "engine": "arrow" if local else "ray"}
