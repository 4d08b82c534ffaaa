"""`make bench` / `python -m bench [name ...]`: every benchmark, each printing ratios against its baseline.

Scale with env vars for a quick look: BENCH_ROWS (default 5,000,000), BENCH_DRIFT_ROWS (1,000,000),
BENCH_BATCH_ROWS (1,000,000).
"""

import os
import secrets
import sys

NAMES = ["ingest", "features", "tune", "drift", "batch", "serve"]


def main() -> None:
    os.environ.setdefault("FORGE_JWT_SECRET", secrets.token_hex(32))
    chosen = sys.argv[1:] or NAMES
    rows = int(os.environ.get("BENCH_ROWS", 5_000_000))
    for name in chosen:
        mod = __import__(f"bench.{name}", fromlist=["main"])
        if name in ("ingest", "features"):
            mod.main(rows)
        elif name == "batch":
            mod.main(int(os.environ.get("BENCH_BATCH_ROWS", 1_000_000)))
        elif name == "drift":
            mod.main(int(os.environ.get("BENCH_DRIFT_ROWS", 1_000_000)))
        else:
            mod.main()
        import ray

        if ray.is_initialized():
            ray.shutdown()


if __name__ == "__main__":
    main()
