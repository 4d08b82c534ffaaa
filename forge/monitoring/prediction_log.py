"""Durable prediction log: records buffered off the request path, flushed to Parquet.

A background thread writes a Parquet file every `flush_rows` records or
`flush_interval_s` seconds; `close()` (graceful shutdown) flushes the rest.
Files are written under a temporary name and renamed, so readers never see
half a file.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

META = ["request_id", "timestamp", "model_name", "model_version", "variant", "prediction", "score", "latency_ms"]


class PredictionLogger:
    def __init__(self, folder: str | Path, flush_rows: int = 500, flush_interval_s: float = 2.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self._buf: list[dict] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._prefix = f"{int(time.time())}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._seq = 0
        self.written = 0
        self._thread = threading.Thread(target=self._loop, name="forge-prediction-log", daemon=True)
        self._thread.start()

    def log(self, records: list[dict]) -> None:
        with self._lock:
            self._buf.extend(records)
            full = len(self._buf) >= self.flush_rows
        if full:
            self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        with self._lock:
            batch, self._buf = self._buf, []
            self._seq += 1
            seq = self._seq
        if not batch:
            return 0
        table = pa.Table.from_pandas(pd.DataFrame.from_records(batch), preserve_index=False)
        final = self.folder / f"part-{self._prefix}-{seq:06d}.parquet"
        tmp = final.with_suffix(".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        self.written += len(batch)
        return len(batch)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()


def read_log(folder: str | Path, last: int | None = None, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """The prediction log (optionally the last N records or those since a time), oldest first."""
    files = sorted(Path(folder).glob("part-*.parquet"))
    if not files:
        return pd.DataFrame(columns=META)
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).sort_values("timestamp", kind="stable")
    if since is not None:
        df = df[pd.to_datetime(df["timestamp"]) >= since]
    if last is not None:
        df = df.tail(last)
    return df.reset_index(drop=True)
