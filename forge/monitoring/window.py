"""The current window summarised with Ray Data, in memory bounded whatever its size.

Each batch is reduced, per numeric column (the prediction included), to Q mid-quantiles that each
stand for count/Q of its values, and per categorical column to its value counts. Merged, the quantiles with
their weights are a weighted sample that scipy's wasserstein_distance and a weighted histogram (PSI)
take as they are; categorical counts are exact. A uniform subsample of rows rides along for what needs
raw rows: KS / chi-square against a small reference, the multivariate tests, the report's plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

# One parser of numeric values for every drift path: the exact tests, the summary and the bins.
from forge.features.bins import numeric_values as finite

if TYPE_CHECKING:
    from forge.registry.client import ModelRef

QUANTILES = 400
SAMPLE_ROWS = 20_000
ROWS = "__rows__"


def value_counts(s: pd.Series) -> pd.Series:
    """A column's non-null values counted as text."""
    return s.dropna().astype(str).value_counts()


def file_format(path: str) -> str:
    """parquet, json or csv, by suffix: a folder (or a remote prefix) is Parquet, any other file CSV."""
    from forge.data.formats import format_of

    return format_of(path)


@dataclass
class Current:
    """One column of the current window: raw values, or a weighted summary with a raw subsample."""

    raw: pd.Series | None = None
    values: np.ndarray | None = None
    weights: np.ndarray | None = None
    counts: pd.Series | None = None
    sample: pd.Series | None = None

    def numeric(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(values, weights or None) of the finite values."""
        if self.raw is not None:
            return finite(self.raw), None
        return self.values, self.weights

    def category_counts(self) -> pd.Series:
        if self.raw is not None:
            return value_counts(self.raw)
        return self.counts

    def rows(self) -> pd.Series:
        """Raw rows: all of them, or the uniform subsample."""
        return self.raw if self.raw is not None else self.sample


@dataclass
class WindowSummary:
    """A summarised window that `detect` takes where it takes a DataFrame (`in`, `[]`, `len`)."""

    n_rows: int
    numeric: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    categorical: dict[str, pd.Series] = field(default_factory=dict)
    sample: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __contains__(self, col: str) -> bool:
        return col in self.numeric or col in self.categorical

    def __getitem__(self, col: str) -> Current:
        values, weights = self.numeric.get(col, (None, None))
        return Current(values=values, weights=weights, counts=self.categorical.get(col),
                       sample=self.sample[col] if col in self.sample else None)

    def __len__(self) -> int:
        return self.n_rows


class _Summarise:
    """Ray Data UDF: one batch -> long rows (column, key, value, weight); scores it first when a model is given.

    A task, not an actor: an actor would hold a whole CPU for the pass, and beside a Serve replica on a 2-CPU
    machine the pass's other tasks then waited for a CPU for ever.
    """

    def __init__(self, numeric: list[str], categorical: list[str], model: ModelRef | None, score_column: str):
        self.numeric, self.categorical, self.score_column = numeric, categorical, score_column
        self.model = model
        self.grid = (np.arange(QUANTILES) + 0.5) / QUANTILES  # midpoints: each stands for exactly 1/Q of the mass

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.model is not None:
            model = self.model.load()
            batch[self.score_column] = model.score_value(*model.predict_raw(batch))
        cols, keys, values, weights = [ROWS], [""], [np.nan], [float(len(batch))]
        for c in self.numeric + ([self.score_column] if self.score_column in batch else []):
            if c not in batch:
                continue
            v = finite(batch[c])
            if len(v):
                q = np.quantile(v, self.grid)
                cols += [c] * len(q)
                keys += [""] * len(q)
                values += list(q)
                weights += [len(v) / len(q)] * len(q)
        for c in self.categorical:
            if c in batch:
                vc = value_counts(batch[c])
                cols += [c] * len(vc)
                keys += list(vc.index)
                values += [np.nan] * len(vc)
                weights += list(vc.to_numpy(dtype=float))
        return pd.DataFrame({"column": cols, "key": keys, "value": values, "weight": weights})


def summarise(ds, numeric: list[str], categorical: list[str], model: ModelRef | None = None,
              score_column: str = "__prediction__", seed: int = 0) -> WindowSummary:
    """Two streaming passes over a Ray Dataset: the per-batch summaries, then a uniform subsample.

    Args:
        model: score each batch with this model (into `score_column`) unless the data has it.
    """
    udf = _Summarise(numeric, categorical, model, score_column)
    long = ds.map_batches(udf, batch_format="pandas").to_pandas()
    n = int(long.loc[long["column"] == ROWS, "weight"].sum())
    out = WindowSummary(n)
    for col, part in long[long["column"] != ROWS].groupby("column", sort=False):
        if col in categorical:
            out.categorical[col] = part.groupby("key")["weight"].sum().sort_values(ascending=False)
        else:
            out.numeric[col] = (part["value"].to_numpy(), part["weight"].to_numpy())
    if n:
        frac = min(1.0, SAMPLE_ROWS / n)
        sample = ds.random_sample(frac, seed=seed) if frac < 1 else ds
        out.sample = sample.to_pandas()
    return out


def read_current(path: str):
    """A streaming Ray Dataset of a current-data file, folder or URI (types inferred, unlike ingestion)."""
    import ray

    fmt = file_format(path)
    if fmt == "parquet":
        return ray.data.read_parquet(path)
    if fmt == "json":
        return ray.data.read_json(path, lines=True)
    return ray.data.read_csv(path)


def large(path: str, min_mb: float) -> bool:
    """Whether a current-data source is worth Ray Data: an object-store URI, or local files of min_mb or more."""
    from pathlib import Path

    if "://" in path and not path.startswith("file://"):
        return True
    p = Path(path.removeprefix("file://"))
    files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p] if p.exists() else []
    return sum(f.stat().st_size for f in files) >= min_mb * 1e6
