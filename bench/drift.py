"""bench/drift: N rows x 20 features against a 100,000-row reference, read from Parquet.

In-process contenders, each from the same file: a plain pyarrow + scipy loop (the baseline), Forge's exact
path (scipy on the whole frame) and Forge's binned path (one Arrow pass binned on the training-time quantiles;
the reference's binning is training-time work and is reported apart). Then the whole command as a user runs it:
`forge drift --current FILE --json` from process start to exit (model and reference download included)
against `python -c <the plain loop>` from process start to exit.

Evidently is not installed beside our pins (it pins its own pandas/numpy ranges); the issue's figure for its
DataDriftPreset on this shape and machine type was about 56 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import stats
from scipy.spatial import distance

from bench._util import measure, table

NUM = [f"x{i}" for i in range(16)]
CAT = [f"c{i}" for i in range(4)]
PLAIN = """
import sys, pyarrow.parquet as pq
from scipy import stats
from scipy.spatial import distance
ref, cur = pq.read_table(sys.argv[1]).to_pandas(), pq.read_table(sys.argv[2]).to_pandas()
drifted = 0
for c in [f"x{i}" for i in range(16)]:
    drifted += stats.wasserstein_distance(ref[c], cur[c]) / ref[c].std() >= 0.1
for c in [f"c{i}" for i in range(4)]:
    r, k = ref[c].value_counts(normalize=True), cur[c].value_counts(normalize=True)
    idx = r.index.union(k.index)
    drifted += distance.jensenshannon(r.reindex(idx, fill_value=0), k.reindex(idx, fill_value=0)) >= 0.1
print(int(drifted))
"""


def plain_loop(ref: pd.DataFrame, cur: pd.DataFrame) -> int:
    drifted = 0
    for c in NUM:
        drifted += stats.wasserstein_distance(ref[c], cur[c]) / ref[c].std() >= 0.1
    for c in CAT:
        r, k = ref[c].value_counts(normalize=True), cur[c].value_counts(normalize=True)
        idx = r.index.union(k.index)
        drifted += distance.jensenshannon(r.reindex(idx, fill_value=0), k.reindex(idx, fill_value=0)) >= 0.1
    return int(drifted)


def _in_process(ref: pd.DataFrame, path: Path) -> dict:
    from forge.config import DriftConfig
    from forge.features.bins import Bins
    from forge.monitoring.binned_tests import detect_binned
    from forge.monitoring.drift import detect
    from forge.monitoring.stream import bin_local

    results: dict = {}
    with measure(results, "pyarrow + scipy loop"):
        base = plain_loop(ref, pq.read_table(path).to_pandas())
    with measure(results, "forge exact (scipy, whole frame)"):
        exact = detect(ref, pq.read_table(path).to_pandas(), NUM, CAT, DriftConfig())
    t0 = time.perf_counter()
    bins = Bins.fit(ref, NUM, CAT)
    fit_s = time.perf_counter() - t0
    with measure(results, "forge binned (one Arrow pass)"):
        cur, _ = bin_local(str(path), "parquet", bins, extra=[])
        binned = detect_binned(bins, cur, DriftConfig())
    results["pyarrow + scipy loop"]["drifted"] = base
    results["forge exact (scipy, whole frame)"]["drifted"] = exact["drifted_features"]
    results["forge binned (one Arrow pass)"]["drifted"] = binned["drifted_features"]
    same = all(binned["features"][c]["drifted"] == f["drifted"] for c, f in exact["features"].items())
    print(f"reference binning at training time: {fit_s:.2f} s (not in the figures); "
          f"binned verdicts equal the exact ones on every column: {same}")
    return results


def _project(folder: Path, ref: pd.DataFrame) -> Path:
    import yaml

    ref.to_parquet(folder / "train.parquet")
    cfg = {"name": "drift_bench", "data": {"source": "train.parquet", "target": "target"},
           "training": {"models": ["logistic_regression"], "num_samples": 1, "max_concurrent": 1}}
    (folder / "forge.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "forge.yaml"


def _whole_command(folder: Path, ref: pd.DataFrame, path: Path) -> dict:
    """Process start to exit: `forge drift --current FILE` against `python -c <plain loop>`."""
    exe = Path(sys.executable).parent
    cfg = _project(folder, ref)
    trained = subprocess.run([str(exe / "forge"), "run", "-c", str(cfg), "--json"], capture_output=True, text=True)
    if trained.returncode:
        raise RuntimeError(trained.stderr[-2000:])
    results: dict = {}
    with measure(results, "python + pyarrow + scipy (process)"):
        plain = subprocess.run([sys.executable, "-c", PLAIN, str(folder / "train.parquet"), str(path)],
                               capture_output=True, text=True, check=True)
    with measure(results, "forge drift --current FILE (process)"):
        forge = subprocess.run([str(exe / "forge"), "drift", "-c", str(cfg), "--current", str(path), "--json"],
                               capture_output=True, text=True)
    out = json.loads(forge.stdout.strip().splitlines()[-1]) if forge.stdout.strip() else {}
    results["python + pyarrow + scipy (process)"]["drifted"] = int(plain.stdout.strip())
    results["forge drift --current FILE (process)"].update(drifted=out.get("drifted_features"),
                                                           engine=out.get("engine"), exit=forge.returncode)
    return results


def main(rows: int = 1_000_000) -> dict:
    from forge.data.synthetic import wide

    out = Path(__file__).parent / "out" / "drift"
    out.mkdir(parents=True, exist_ok=True)
    ref = wide(100_000, 20, seed=0)
    cur = wide(rows, 20, seed=1)
    cur["x0"] = cur["x0"] + 0.5
    path = out / "current.parquet"
    cur.to_parquet(path, row_group_size=100_000)
    del cur
    results = _in_process(ref, path)
    print(table(f"bench/drift: {rows:,} rows x 20 features vs 100,000-row reference, in process", results,
                "pyarrow + scipy loop"))
    whole = _whole_command(out, ref, path)
    print(table(f"bench/drift: the whole command, {rows:,} rows x 20 features", whole,
                "python + pyarrow + scipy (process)"))
    return {**results, **whole}


if __name__ == "__main__":
    np.random.seed(0)
    main(*(int(a) for a in sys.argv[1:]))
