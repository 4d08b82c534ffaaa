"""bench/features: fit + transform of N rows x 20 columns, in process and with Ray Data, vs scikit-learn's
ColumnTransformer;
get_historical_features for 1,000,000 entity rows vs pandas merge_asof."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench._util import in_child, measure, table

OUT = Path(__file__).resolve().parent / "out" / "features"


def _read(path: str) -> pd.DataFrame:
    """The same reader for both in-process contenders: Arrow buffers freed as pandas takes them over (a plain
    read_parquet holds both copies at its peak)."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas(split_blocks=True, self_destruct=True)


def _sklearn(path: str, num: list[str], cat: list[str]) -> dict:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = _read(path)
    ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), num),
                            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                  OneHotEncoder(handle_unknown="ignore", sparse_output=False)), cat)])
    return {"rows": len(ct.fit_transform(df))}


def _forge_in_process(path: str, num: list[str], cat: list[str]) -> dict:
    """The trainer's path: the split is a frame in memory, fitted in one pass; rows are transformed in chunks by
    a consumer that does not keep them (as the Ray Data contender iterates its batches)."""
    from forge.features.engineering import FeatureSpec, FeatureTransform

    df = _read(path)
    ft = FeatureTransform(FeatureSpec(num, cat)).fit(df)
    return {"rows": sum(len(ft.transform_batch(df.iloc[i:i + 200_000])) for i in range(0, len(df), 200_000))}


def main(rows: int = 5_000_000, lookups: int = 1_000_000) -> dict:
    import ray

    from forge._runtime import init_ray
    from forge.data.synthetic import wide
    from forge.features.engineering import FeatureSpec, FeatureTransform
    from forge.features.store import FeatureStore

    init_ray()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"wide-{rows}.parquet"
    if not path.exists():
        wide(rows, 20, seed=0).to_parquet(path)
    num = [f"x{i}" for i in range(16)]
    cat = [f"c{i}" for i in range(4)]
    results: dict = {}
    # both in-process contenders in fresh processes: their peaks are then comparable (bench/_util.in_child)
    in_child(results, "sklearn ColumnTransformer (pandas)", _sklearn, str(path), num, cat)
    in_child(results, "forge FeatureTransform (in process, as training runs it)", _forge_in_process, str(path),
             num, cat)
    with measure(results, "forge FeatureTransform (Ray Data)"):
        ds = ray.data.read_parquet(str(path))
        ft = FeatureTransform(FeatureSpec(num, cat)).fit(ds)
        n = 0
        for batch in ft.transform(ds).iter_batches(batch_size=None, batch_format="numpy"):
            n += len(batch["features"])
        results_rows = n
    results["forge FeatureTransform (Ray Data)"]["rows"] = results_rows
    print(table(f"bench/features: fit + transform, {rows:,} rows x 20 columns", results,
                "sklearn ColumnTransformer (pandas)"))

    rng = np.random.default_rng(0)
    feats = pd.DataFrame({"id": rng.integers(0, 100_000, 2_000_000),
                          "t": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**7, 2_000_000), "s"),
                          "v": rng.normal(size=2_000_000)})
    q = pd.DataFrame({"id": rng.integers(0, 100_000, lookups),
                      "t": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**7, lookups), "s")})
    store_dir = OUT / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = FeatureStore(store_dir, buckets=16)
    store.write_table("f", feats, "id", "t")
    pit: dict = {}
    with measure(pit, "pandas merge_asof"):
        pd.merge_asof(q.sort_values("t"), feats.sort_values("t"), on="t", by="id", direction="backward")
    with measure(pit, "forge get_historical_features (in process: the table fits)"):
        store.get_historical_features("f", q)
    bucketed = FeatureStore(store_dir, buckets=16, in_process_rows=0)  # as a table beyond the threshold joins
    with measure(pit, "forge get_historical_features (bucketed Ray tasks)"):
        bucketed.get_historical_features("f", q)
    print(table(f"bench/features: point-in-time lookup, {lookups:,} entity rows", pit, "pandas merge_asof"))
    return {"transform": results, "pit": pit}


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
