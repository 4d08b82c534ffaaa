"""Batch inference with Ray Data: a file or folder in, Parquet out, rows in = rows out."""

from __future__ import annotations

import pandas as pd
import ray

from forge.config import ForgeConfig
from forge.data.formats import format_of
from forge.registry.client import ModelRef, Registry


class _Predictor:
    """One model load per Ray Data actor, then batches through ForgeModel.predict_raw."""

    def __init__(self, model: ModelRef):
        self.model = model.load()

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        pred, proba = self.model.predict_raw(df)
        out = df.copy()
        out["prediction"] = pred
        out["score"] = self.model.score_value(pred, proba)
        return out


def batch_predict(cfg: ForgeConfig, input_path: str, output_path: str, model: str = "champion",
                  concurrency: int = 1) -> dict:
    """Predict every row of `input_path` (CSV, Parquet or JSON lines; file, folder or glob)."""
    src = cfg.resolve(input_path)
    reader = {"csv": ray.data.read_csv, "json": ray.data.read_json}.get(format_of(src, "parquet"),
                                                                         ray.data.read_parquet)
    ds = reader(src)
    pinned = Registry.of(cfg).ref(model)  # the version, not the alias: every actor loads the same model
    out = ds.map_batches(_Predictor, fn_constructor_kwargs={"model": pinned},
                         batch_format="pandas", concurrency=concurrency,
                         num_cpus=0.5)  # leaves the read tasks a share of small nodes
    dest = cfg.resolve(output_path)
    out.write_parquet(dest)
    rows_out = ray.data.read_parquet(dest).count()
    return {"rows": rows_out, "rows_in": ds.count(), "output_path": dest}
