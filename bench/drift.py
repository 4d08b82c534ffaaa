"""bench/drift: N rows x 20 features against a 100,000-row reference: Forge vs a plain pandas + scipy loop.

Forge twice: the pandas path (a log window in memory) and the Ray Data path that `forge drift --current`
takes for large files (streamed, summarised per batch; bounded memory).

Evidently is not installed beside our pins (it pins its own pandas/numpy ranges), so the baseline is the plain
loop computing the same statistics (Wasserstein / Jensen-Shannon, as Evidently's rule picks above 1,000 rows).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from bench._util import measure, table


def plain_loop(ref: pd.DataFrame, cur: pd.DataFrame, num: list[str], cat: list[str]) -> int:
    drifted = 0
    for c in num:
        drifted += stats.wasserstein_distance(ref[c], cur[c]) / ref[c].std() >= 0.1
    for c in cat:
        r, k = ref[c].value_counts(normalize=True), cur[c].value_counts(normalize=True)
        idx = r.index.union(k.index)
        drifted += distance.jensenshannon(r.reindex(idx, fill_value=0), k.reindex(idx, fill_value=0)) >= 0.1
    return int(drifted)


def main(rows: int = 1_000_000) -> dict:
    import time

    from forge._runtime import init_ray
    from forge.config import DriftConfig
    from forge.data.synthetic import wide
    from forge.monitoring.drift import detect
    from forge.monitoring.window import read_current, summarise

    ref = wide(100_000, 20, seed=0)
    cur = wide(rows, 20, seed=1)
    cur["x0"] = cur["x0"] + 0.5
    num = [f"x{i}" for i in range(16)]
    cat = [f"c{i}" for i in range(4)]
    out = Path(__file__).parent / "out" / "drift"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "current.parquet"
    cur.to_parquet(path, row_group_size=100_000)
    del cur
    t0 = time.perf_counter()
    init_ray()
    print(f"ray.init: {time.perf_counter() - t0:.1f} s (not in the figures below)")
    results: dict = {}
    # Every contender reads the same Parquet file: the window arrives as data, not as a frame in memory.
    with measure(results, "pandas + scipy loop"):
        base = plain_loop(ref, pd.read_parquet(path), num, cat)
    with measure(results, "forge detect (pandas)"):
        res_pd = detect(ref, pd.read_parquet(path), num, cat, DriftConfig())
    with measure(results, "forge detect (Ray Data summary)"):
        res_ray = detect(ref, summarise(read_current(str(path)), num, cat), num, cat, DriftConfig())
    results["pandas + scipy loop"]["drifted"] = base
    results["forge detect (pandas)"]["drifted"] = res_pd["drifted_features"]
    results["forge detect (Ray Data summary)"]["drifted"] = res_ray["drifted_features"]
    print(table(f"bench/drift: {rows:,} rows x 20 features vs 100,000-row reference", results,
                "pandas + scipy loop"))
    return results


if __name__ == "__main__":
    np.random.seed(0)
    main(*(int(a) for a in sys.argv[1:]))
