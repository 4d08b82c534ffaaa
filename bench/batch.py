"""bench/batch: `forge predict` on N rows of a 3-feature CSV, process start to exit, against a plain
single-process loop that loads the same champion with `mlflow.pyfunc`, predicts in 100k-row chunks and writes
Parquet (the baseline the issue names)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench._util import measure, table

PLAIN = """
import sys, mlflow, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
writer = None
for chunk in pd.read_csv(sys.argv[3], chunksize=100_000):
    out = pd.concat([chunk.reset_index(drop=True), model.predict(chunk).reset_index(drop=True)], axis=1)
    table = pa.Table.from_pandas(out, preserve_index=False)
    writer = writer or pq.ParquetWriter(sys.argv[4], table.schema)
    writer.write_table(table)
writer.close()
"""


def _project(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 50_000
    train = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(2, 1, n), "c": rng.choice(["x", "y", "z"], n)})
    train["y"] = ((train["a"] + train["b"] * 0.5 + (train["c"] == "x")) > 1.5).astype(int)
    train.to_csv(folder / "train.csv", index=False)
    cfg = {"name": "batch_bench", "data": {"source": "train.csv", "target": "y"},
           "training": {"models": ["logistic_regression"], "num_samples": 1, "max_concurrent": 1}}
    (folder / "forge.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "forge.yaml"


def main(rows: int = 1_000_000) -> dict:
    from forge.config import load_config
    from forge.workspace import tracking_uri

    out = Path(__file__).parent / "out" / "batch"
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = _project(out)
    exe = Path(sys.executable).parent
    trained = subprocess.run([str(exe / "forge"), "run", "-c", str(cfg_path), "--json"], capture_output=True, text=True)
    if trained.returncode:
        raise RuntimeError(trained.stderr[-2000:])
    rng = np.random.default_rng(1)
    pd.DataFrame({"a": rng.normal(0, 1, rows), "b": rng.normal(2, 1, rows),
                  "c": rng.choice(["x", "y", "z"], rows)}).to_csv(out / "input.csv", index=False)
    uri = tracking_uri(load_config(cfg_path))
    results: dict = {}
    with measure(results, "mlflow.pyfunc loop (process)"):
        subprocess.run([sys.executable, "-c", PLAIN, uri, "models:/batch_bench@champion", str(out / "input.csv"),
                        str(out / "plain.parquet")], check=True, capture_output=True)
    with measure(results, "forge predict (process)"):
        r = subprocess.run([str(exe / "forge"), "predict", "-c", str(cfg_path), "--input", str(out / "input.csv"),
                            "--output", str(out / "forge_out"), "--json"], capture_output=True, text=True)
    res = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-500:]}
    results["forge predict (process)"].update(rows=res.get("rows"), engine=res.get("engine"))
    print(table(f"bench/batch: {rows:,} rows x 3 features, CSV in, Parquet out", results,
                "mlflow.pyfunc loop (process)"))
    return results


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
