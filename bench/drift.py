"""bench/drift: N rows x 20 features against a 100,000-row reference: Forge vs a plain pandas + scipy loop.

Evidently is not installed beside our pins (it pins its own pandas/numpy ranges), so the baseline is the plain
loop computing the same statistics (Wasserstein / Jensen-Shannon, as Evidently's rule picks above 1,000 rows).
"""

from __future__ import annotations

import sys

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
    from forge.config import DriftConfig
    from forge.data.synthetic import wide
    from forge.monitoring.drift import detect

    ref = wide(100_000, 20, seed=0)
    cur = wide(rows, 20, seed=1)
    cur["x0"] = cur["x0"] + 0.5
    num = [f"x{i}" for i in range(16)]
    cat = [f"c{i}" for i in range(4)]
    results: dict = {}
    with measure(results, "pandas + scipy loop"):
        base = plain_loop(ref, cur, num, cat)
    with measure(results, "forge detect"):
        res = detect(ref, cur, num, cat, DriftConfig())
    results["forge detect"]["drifted"] = res["drifted_features"]
    results["pandas + scipy loop"]["drifted"] = base
    print(table(f"bench/drift: {rows:,} rows x 20 features vs 100,000-row reference", results,
                "pandas + scipy loop"))
    return results


if __name__ == "__main__":
    np.random.seed(0)
    main(*(int(a) for a in sys.argv[1:]))
