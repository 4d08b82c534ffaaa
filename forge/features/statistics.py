"""Feature statistics of the training data, in one Ray Data pass; the reference for drift.

Each batch yields exact moments (count, nulls, sum, sum of squares, min, max),
category counts, and a uniform random sample of rows. The driver merges them:
moments stay exact, quantiles and histograms come from the merged sample, and
the sample itself is saved as the drift reference.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import ray

from forge.features.bins import BINS_FILE, Bins
from forge.storage import Location

STATS_FILE = "feature_stats.json"
REFERENCE_FILE = "reference.parquet"
_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def _partial(df: pd.DataFrame, numeric: list[str], categorical: list[str], sample_frac: float, seed: int) -> dict:
    out: dict = {"n": np.array([len(df)])}
    for c in numeric:
        v = pd.to_numeric(df[c].astype(object), errors="coerce").to_numpy(dtype="float64")
        ok = v[~np.isnan(v)]
        out[f"num:{c}"] = np.array([[ok.size, v.size - ok.size, ok.sum(), (ok**2).sum(),
                                     ok.min() if ok.size else np.inf, ok.max() if ok.size else -np.inf]])
    for c in categorical:
        counts = df[c].astype("str").value_counts(dropna=False)
        out[f"cat:{c}"] = np.array([json.dumps({("__null__" if pd.isna(k) else str(k)): int(n) for k, n in counts.items()})])
    rng = np.random.default_rng(seed + len(df))
    keep = rng.random(len(df)) < sample_frac
    out["sample"] = np.array([df.loc[keep, [*numeric, *categorical]].to_json(orient="split", index=False)])
    return out


def compute_statistics(
    ds: ray.data.Dataset, numeric: list[str], categorical: list[str], reference_rows: int = 5000, seed: int = 0
) -> tuple[dict, pd.DataFrame]:
    """Per-feature statistics and a reference sample, from one pass over `ds`.

    Returns:
        (stats by feature name, reference sample DataFrame of at most `reference_rows` rows)
    """
    total = ds.count()
    frac = min(1.0, reference_rows / max(total, 1) * 1.2)
    parts = ds.map_batches(
        _partial, batch_format="pandas", fn_kwargs=dict(numeric=numeric, categorical=categorical,
                                                          sample_frac=frac, seed=seed)
    ).take_all()
    samples = [pd.read_json(io.StringIO(p["sample"]), orient="split") for p in parts]
    sample = pd.concat(samples, ignore_index=True) if samples else pd.DataFrame(columns=[*numeric, *categorical])
    if len(sample) > reference_rows:
        sample = sample.sample(reference_rows, random_state=seed).reset_index(drop=True)
    stats: dict = {}
    for c in numeric:
        m = np.array([p[f"num:{c}"] for p in parts]).reshape(-1, 6)
        n, nulls, s, ss = m[:, 0].sum(), m[:, 1].sum(), m[:, 2].sum(), m[:, 3].sum()
        mean = s / n if n else float("nan")
        var = (ss - n * mean**2) / (n - 1) if n > 1 else 0.0
        vals = pd.to_numeric(sample[c], errors="coerce").dropna().to_numpy(dtype="float64") if c in sample else []
        qs = np.quantile(vals, _QUANTILES).tolist() if len(vals) else []
        edges = np.histogram_bin_edges(vals, bins=20) if len(vals) else np.array([])
        hist = np.histogram(vals, bins=edges)[0].tolist() if len(vals) else []
        stats[c] = {
            "type": "numeric", "count": int(n), "nulls": int(nulls), "mean": float(mean),
            "std": float(np.sqrt(max(var, 0.0))), "min": float(m[:, 4].min()), "max": float(m[:, 5].max()),
            "quantiles": dict(zip(map(str, _QUANTILES), qs)), "histogram": {"edges": edges.tolist(), "counts": hist},
        }
    for c in categorical:
        freq: dict[str, int] = {}
        for p in parts:
            for k, v in json.loads(p[f"cat:{c}"]).items():
                freq[k] = freq.get(k, 0) + v
        nulls = freq.pop("__null__", 0) + freq.pop("nan", 0)
        stats[c] = {"type": "categorical", "count": int(sum(freq.values())), "nulls": int(nulls),
                    "frequencies": dict(sorted(freq.items(), key=lambda kv: -kv[1]))}
    return stats, sample


def save_statistics(folder: Location, stats: dict, sample: pd.DataFrame, bins: Bins) -> tuple[Location, ...]:
    """The drift reference of a training run: statistics, a row sample, and the binned training data."""
    (folder / STATS_FILE).write_text(json.dumps(stats, indent=2))
    (folder / REFERENCE_FILE).write_table(pa.Table.from_pandas(sample, preserve_index=False))
    (folder / BINS_FILE).write_text(bins.to_json())
    return folder / STATS_FILE, folder / REFERENCE_FILE, folder / BINS_FILE


def load_statistics(folder: Location) -> tuple[dict, pd.DataFrame]:
    return json.loads((folder / STATS_FILE).read_text()), (folder / REFERENCE_FILE).read_table().to_pandas()
