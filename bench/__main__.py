"""`make bench` / `python -m bench [--quick] [name ...]`: every benchmark, each printing ratios against its
baseline, all rows written to bench/out/results.json (benchmark, contender, seconds, peak bytes, ratio, git
commit, machine). `python -m bench.readme` turns that file into the README's table.

--quick runs each at a small size (about 7 minutes on the 2-core machine, most of it Ray start-ups and the small
models the drift, batch and serve benchmarks train), for checking a change; the README's figures come
from full runs. Sizes: BENCH_ROWS (5,000,000), BENCH_DRIFT_ROWS (1,000,000), BENCH_BATCH_ROWS (1,000,000).
"""

import json
import os
import platform
import secrets
import subprocess
import sys
import time
from pathlib import Path

NAMES = ["ingest", "features", "tune", "drift", "batch", "serve", "coldstart"]
QUICK = {"BENCH_ROWS": "200000", "BENCH_DRIFT_ROWS": "100000", "BENCH_BATCH_ROWS": "100000"}
OUT = Path(__file__).parent / "out" / "results.json"


def _machine() -> dict:
    import psutil

    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def _commit() -> str | None:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                       cwd=Path(__file__).parent)
    return r.stdout.strip() or None


def main() -> None:
    from bench._util import RECORDS

    args = sys.argv[1:]
    quick = "--quick" in args
    chosen = [a for a in args if a != "--quick"] or NAMES
    if quick:
        for key, value in QUICK.items():
            os.environ.setdefault(key, value)
    os.environ.setdefault("FORGE_JWT_SECRET", secrets.token_hex(32))
    rows = int(os.environ.get("BENCH_ROWS", 5_000_000))
    for name in chosen:
        mod = __import__(f"bench.{name}", fromlist=["main"])
        if name == "ingest":  # a small file in process (issue 16's 500k rows), then a large one on Ray Data
            mod.main(rows // 10)
            mod.main(rows)
        elif name == "features":
            mod.main(rows, lookups=rows // 5)
        elif name == "batch":
            mod.main(int(os.environ.get("BENCH_BATCH_ROWS", 1_000_000)))
        elif name == "drift":
            mod.main(int(os.environ.get("BENCH_DRIFT_ROWS", 1_000_000)))
        elif name == "serve":
            mod.main(seconds=3 if quick else 10)
        elif name == "coldstart":
            mod.main(runs=1 if quick else 2)
        else:
            mod.main(epochs=2) if quick else mod.main()
        import ray

        if ray.is_initialized():
            ray.shutdown()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"commit": _commit(), "machine": _machine(), "quick": quick,
                               "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": RECORDS},
                              indent=2, default=str))
    print(f"\nbench: {len(RECORDS)} rows -> {OUT}")


if __name__ == "__main__":
    main()
