"""FeatureTransform's fit in one pass: per-block moments and category counts, merged on the driver.

Ray's `Chain.fit` fits each preprocessor on the output of the previous one's transform: four aggregation passes
and three transforms for imputer, scaler, imputer, encoder (bench/features measured it at x20 scikit-learn's
ColumnTransformer on 200k rows). Every statistic those four need comes from the raw block at once:

- numeric mean imputation: the mean of the non-null values;
- the scaler, fitted on the imputed column: the same mean, and a population std (Ray's `Std(ddof=0)`) whose sum
  of squared deviations is the non-null values' own (an imputed value sits exactly on the mean) over every row;
- categorical most-frequent imputation: the most common non-null value (ties: the first seen, as `Counter`);
- the one-hot encoder, fitted on the imputed column: the sorted non-null categories (Ray's `unique_post_fn`).

The numbers go into the Chain's own `stats_`, so Ray's transform (`chain_transform`) and Forge's numpy apply
use the same statistics; tests/features/test_engineering.py holds them equal to a Chain that Ray fitted itself.
Blocks merge with Chan et al.'s pairwise update, stable where a running sum of squares is not.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CHUNK_ROWS = 250_000  # an in-memory frame is summarised in chunks: temporaries stay ~100 MB


@dataclass
class Moments:
    """Rows, and per numeric column: non-null count, mean and sum of squared deviations."""

    rows: int
    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    counts: dict[str, Counter] = field(default_factory=dict)

    def merge(self, other: Moments) -> Moments:
        n = self.n + other.n
        safe = np.where(n > 0, n, 1)
        delta = other.mean - self.mean
        mean = np.where(n > 0, self.mean + delta * other.n / safe, np.nan)
        m2 = self.m2 + other.m2 + delta**2 * self.n * other.n / safe
        mean = np.where(self.n == 0, other.mean, np.where(other.n == 0, self.mean, mean))
        m2 = np.where(self.n == 0, other.m2, np.where(other.n == 0, self.m2, m2))
        counts = {c: self.counts.get(c, Counter()) + other.counts.get(c, Counter())
                  for c in {*self.counts, *other.counts}}
        return Moments(self.rows + other.rows, n, mean, m2, counts)


def block_moments(df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Moments:
    """One prepared block (numeric float64 with NaN nulls, categorical str) summarised."""
    x = df[numeric].to_numpy(dtype="float64").reshape(len(df), len(numeric))
    ok = ~np.isnan(x)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(x, axis=0) / np.where(n > 0, n, 1), np.nan)
        m2 = np.nansum((x - mean) ** 2, axis=0) if len(df) else np.zeros(len(numeric))
    counts = {c: Counter(df[c].value_counts(dropna=True).to_dict()) for c in categorical}
    return Moments(len(df), n.astype("int64"), mean, m2, counts)


def _to_json(m: Moments) -> str:
    return json.dumps({"rows": m.rows, "n": m.n.tolist(), "mean": [None if np.isnan(v) else v for v in m.mean],
                       "m2": m.m2.tolist(), "counts": {c: list(v.items()) for c, v in m.counts.items()}})


def _from_json(s: str) -> Moments:
    d = json.loads(s)
    return Moments(d["rows"], np.array(d["n"], dtype="int64"),
                   np.array([np.nan if v is None else v for v in d["mean"]], dtype="float64"),
                   np.array(d["m2"], dtype="float64"), {c: Counter(dict(map(tuple, v))) for c, v in d["counts"].items()})


def moments(data, prepare: Callable[[pd.DataFrame], pd.DataFrame], numeric: list[str],
            categorical: list[str]) -> Moments:
    """The merged moments of a pandas frame (in process, in chunks) or a Ray Dataset (one pass, whole blocks)."""
    if isinstance(data, pd.DataFrame):
        parts = [block_moments(prepare(data.iloc[i:i + CHUNK_ROWS]), numeric, categorical)
                 for i in range(0, max(len(data), 1), CHUNK_ROWS)]
    else:
        def summarise(df: pd.DataFrame) -> dict:
            return {"moments": np.array([_to_json(block_moments(prepare(df), numeric, categorical))])}

        rows = data.map_batches(summarise, batch_format="pandas", batch_size=None).take_all()
        parts = [_from_json(r["moments"]) for r in rows]
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out


def chain_stats(m: Moments, numeric: list[str], categorical: list[str]) -> list[dict]:
    """`stats_` of the Chain's preprocessors, in order: [imputer, scaler]? + [imputer, encoder]?."""
    out = []
    if numeric:
        means = [None if n == 0 else float(v) for n, v in zip(m.n, m.mean)]
        out.append({f"mean({c})": v for c, v in zip(numeric, means)})
        std = np.sqrt(m.m2 / max(m.rows, 1))
        out.append({**{f"mean({c})": v for c, v in zip(numeric, means)},
                    **{f"std({c})": float(s) for c, s in zip(numeric, std)}})
    if categorical:
        top = {c: (m.counts[c].most_common(1)[0][0] if m.counts.get(c) else None) for c in categorical}
        out.append({f"most_frequent({c})": v for c, v in top.items()})
        out.append({f"unique_values({c})": {v: i for i, v in enumerate(sorted(m.counts.get(c, {})))}
                    for c in categorical})
    return out
