"""forge/monitoring/prediction_log.py: nothing lost, even when the writing process is killed."""

import subprocess
import sys
import textwrap

import pandas as pd

from forge.monitoring.prediction_log import PredictionLogger, read_log


def _record(i: int) -> dict:
    return {"request_id": f"r{i}", "row": 0, "timestamp": pd.Timestamp("2026-11-28 10:00:00") + pd.Timedelta(seconds=i),
            "model_name": "m", "model_version": "1", "variant": "champion", "prediction": i % 2, "score": 0.25,
            "latency_ms": 1.5, "x": float(i), "region": None if i % 5 == 0 else "north"}


def _writer(folder, n: int, then: str) -> subprocess.Popen:
    """A process that logs n records (flushes only every 60 s) and then dies hard or waits."""
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        from tests.monitoring.test_prediction_log import _record
        from forge.monitoring.prediction_log import PredictionLogger
        log = PredictionLogger({str(folder)!r}, flush_rows=10_000, flush_interval_s=60)
        for i in range({n}):
            log.log([_record(i)])
        print("logged", flush=True)
        if {then!r} == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.readline()
        log.close()
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_killed_writer_loses_nothing(tmp_path):
    p = _writer(tmp_path, 37, "kill")
    assert p.stdout.readline().strip() == "logged"
    p.wait(30)
    assert p.returncode == -9 and read_log(tmp_path).empty  # nothing reached Parquet before the kill
    log = PredictionLogger(tmp_path)  # the next writer (a restarted replica) recovers the dead one's records
    assert log.recovered == 37
    log.close()
    df = read_log(tmp_path)
    assert sorted(df["request_id"]) == sorted(f"r{i}" for i in range(37))
    assert df["region"].isna().sum() == 8 and df["x"].sum() == sum(range(37))
    assert not list(tmp_path.glob("wal-*"))


def test_live_writer_is_left_alone_and_counts_stay_exact(tmp_path):
    p = _writer(tmp_path, 12, "wait")
    assert p.stdout.readline().strip() == "logged"
    other = PredictionLogger(tmp_path)
    assert other.recovered == 0 and len(list(tmp_path.glob("wal-*.jsonl"))) == 2  # its segment and ours
    other.log([_record(100 + i) for i in range(5)])
    other.close()
    p.communicate("\n", timeout=30)  # graceful close of the first writer
    assert len(read_log(tmp_path)) == 17 and not list(tmp_path.glob("wal-*"))
