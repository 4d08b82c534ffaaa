"""Durable prediction log: records buffered off the request path, flushed to Parquet.

Every record is first appended to a per-process write-ahead file (JSON lines, one
`write` per request: it reaches the kernel, so it survives the process being
killed). A background thread writes a Parquet file every `flush_rows` records or
`flush_interval_s` seconds and drops the write-ahead segment it covered;
`close()` (graceful shutdown) flushes the rest. A new logger on the same folder
turns the segments of dead writers (found by their released file locks) into
Parquet, so a replica restarted after a crash loses nothing. Files are written
under a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pydantic_core

from forge._columns import by_column
from forge.storage import Location, as_location

META = ["request_id", "timestamp", "model_name", "model_version", "variant", "prediction", "score", "latency_ms"]


_REQUEST_KEYS = {"rows", "per_row", "common"}


class _Runs(NamedTuple):
    """A column with one value per request (its id, time, model), each repeated for the request's rows: Arrow
    converts the few values and repeats them, where converting the repeated objects took longer (a timestamp
    column of 500 rows: 0.16 ms; all the shared columns, a third of the flush's conversion)."""

    values: list
    counts: list[int]

    def expand(self) -> list:
        return [v for v, n in zip(self.values, self.counts) for _ in range(n)]


def _columns(chunks: list[tuple[list[dict], dict[str, list], dict]]) -> dict[str, list | _Runs]:
    """log_request's chunks as columns: each row's fields, then the shared values, then its own (a later one wins
    a name), in order of first appearance; None where a row lacks a field. No dict per row is built."""
    chunks = [chunk for chunk in chunks if chunk[0]]
    names = dict.fromkeys(k for rows, per_row, common in chunks
                          for k in (*dict.fromkeys(k for ks in _distinct_keys(rows) for k in ks), *common, *per_row))
    runs = {n for n in names if all(n in common and n not in per_row for _, per_row, common in chunks)}
    cols: dict[str, list] = {name: [] for name in names}
    for rows, per_row, common in chunks:
        own = [n for n in names if n not in per_row and n not in common]
        for name, values in zip(own, by_column(rows, own)):
            cols[name].extend(values)
        for name, value in common.items():
            if name in runs:
                cols[name].append(value)
            elif name not in per_row:
                cols[name].extend([value] * len(rows))
        for name, values in per_row.items():
            cols[name].extend(values)
    counts = [len(rows) for rows, *_ in chunks]
    return {name: _Runs(values, counts) if name in runs else values for name, values in cols.items()}


def _distinct_keys(rows: list[dict]) -> list:
    """The rows' key views: the first row's alone when every row has the same (a validated request's rows do)."""
    first = rows[0].keys()
    return [first] if all(r.keys() == first for r in rows) else [r.keys() for r in rows]


def _json_line(obj: dict) -> str:
    """One WAL line. pydantic-core's encoder took 0.13 ms where json.dumps took 0.72 ms for a 100-row x 20 request
    (json.dumps was a tenth of a replica's time under bench/serve's 100-row load, profiled with py-spy). What it
    cannot encode (pd.NaT) goes through json.dumps; recover() reads either, timestamps with a space or a T."""
    try:
        return pydantic_core.to_json(obj, fallback=str).decode() + "\n"
    except pydantic_core.PydanticSerializationError:
        return json.dumps(obj, default=str) + "\n"


def _part(folder: Location, stem: str) -> Location:
    return folder / f"part-{stem}.parquet"


def _to_table(columns: dict[str, list | _Runs]) -> pa.Table:
    """Columns as Arrow, typed as pandas typed them (large strings; an int column with a null as float64); a
    column Arrow cannot type (mixed kinds, an int beyond 64 bits) is kept as text.

    Straight from the columns, not through a DataFrame of records: that was most of the flush, and the flush a
    sixth of a replica's samples under 100-row load (py-spy; 3.6-4.2 against 1.1 ms per 500 rows)."""
    return pa.table({name: _to_array(values) for name, values in columns.items()})


def _to_array(values: list | _Runs) -> pa.Array:
    try:
        if isinstance(values, _Runs):
            index = np.repeat(np.arange(len(values.counts)), values.counts)
            return _as_pandas_typed(pa.array(values.values, from_pandas=True)).take(pa.array(index))
        return _as_pandas_typed(pa.array(values, from_pandas=True))
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        values = values.expand() if isinstance(values, _Runs) else values
        return pa.array([None if v is None else str(v) for v in values], pa.large_string())


def _as_pandas_typed(arr: pa.Array) -> pa.Array:
    """The type the DataFrame path gave, so parts written before and after keep one schema."""
    if pa.types.is_string(arr.type):
        return arr.cast(pa.large_string())
    if pa.types.is_integer(arr.type) and arr.null_count:
        return arr.cast(pa.float64(), safe=False)  # pandas' float64 too: an int past 2**53 rounds
    return arr


def _write_parquet(columns: dict[str, list], final: Location) -> None:
    final.write_table(_to_table(columns))  # whole-object: a temporary name and a rename, or one PUT


class PredictionLogger:
    """Args:
        folder: where the Parquet parts go (the workspace's predictions/<model>/, local or an object store).
        wal_dir: this node's folder for the write-ahead segments (default: folder, which must then be local).
    """

    def __init__(self, folder: Location | str | Path, flush_rows: int = 500, flush_interval_s: float = 2.0,
                 wal_dir: Path | None = None):
        self.folder = as_location(folder).mkdir()
        self.wal_dir = Path(wal_dir) if wal_dir is not None else Path(self.folder)
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self._buf: list[tuple[list[dict], dict[str, list], dict]] = []  # log_request's arguments
        self._rows = 0  # rows in _buf
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._prefix = f"{int(time.time())}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._seq = 0
        self.written = 0
        self.recovered = recover(self.wal_dir, self.folder)
        self._wal = self._open_segment()
        self._thread = threading.Thread(target=self._loop, name="forge-prediction-log", daemon=True)
        self._thread.start()

    def _stem(self, seq: int) -> str:
        return f"{self._prefix}-{seq:06d}"

    def _open_segment(self) -> tuple:
        final = self.wal_dir / f"wal-{self._stem(self._seq + 1)}.jsonl"
        tmp = final.with_suffix(".new")
        f = open(tmp, "a", encoding="utf-8")  # noqa: SIM115
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this process lives
        os.replace(tmp, final)  # visible to recover() only once locked
        return f, final

    def log(self, records: list[dict]) -> None:
        """Append records, one dict per row."""
        self.log_request(records, {}, {})

    def log_request(self, rows: list[dict], per_row: dict[str, list], common: dict) -> None:
        """Append one request's rows: `per_row` holds a list per column (a value per row), `common` the values
        every row shares (request id, time, model). One JSON line, and the rows are not merged into records
        here but at flush time, in bulk: per-row dicts and a json.dumps per row were 2.1 ms of a 100-row
        request's 9.5 ms in the replica (bench/serve's model, profiled)."""
        if not rows:
            return
        line = _json_line({"rows": rows, "per_row": per_row, "common": common})
        with self._lock:
            self._wal[0].write(line)
            self._wal[0].flush()  # into the kernel: survives this process dying
            self._buf.append((rows, per_row, common))
            self._rows += len(rows)
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the thread must outlive any one bad batch; its segment stays for recover()
                traceback.print_exc()

    def flush(self) -> int:
        with self._lock:
            if not self._buf:
                return 0
            chunks, self._buf, self._rows = self._buf, [], 0
            self._seq += 1
            seq, segment = self._seq, self._wal
            self._wal = self._open_segment()
        _write_parquet(_columns(chunks), _part(self.folder, self._stem(seq)))
        segment[1].unlink()  # still locked: a concurrent recover() cannot take it half-done
        segment[0].close()
        rows = sum(len(r) for r, _, _ in chunks)
        self.written += rows
        return rows

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()
        self._wal[1].unlink(missing_ok=True)
        self._wal[0].close()


def recover(wal_dir: Path, folder: Location | None = None) -> int:
    """Turn the write-ahead segments of dead writers in wal_dir into Parquet parts in folder (default wal_dir);
    returns the records recovered."""
    folder = as_location(folder if folder is not None else wal_dir)
    n = 0
    for wal in sorted(Path(wal_dir).glob("wal-*.jsonl")):
        try:
            f = open(wal, encoding="utf-8")  # noqa: SIM115
        except FileNotFoundError:
            continue
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            final = _part(folder, wal.stem.removeprefix("wal-"))
            if not final.exists():  # the writer may have died between its Parquet write and the unlink
                # a torn last line never returned; a line is one request (log_request) or one record (older)
                lines = [json.loads(line) for line in f if line.endswith("\n")]
                chunks = [(x["rows"], x["per_row"], x["common"]) if _REQUEST_KEYS == x.keys() else ([x], {}, {})
                          for x in lines]
                rows = sum(len(r) for r, _, _ in chunks)
                if rows:
                    columns = _columns(chunks)
                    ts = columns["timestamp"]
                    columns["timestamp"] = _Runs([pd.Timestamp(t) for t in ts.values], ts.counts) \
                        if isinstance(ts, _Runs) else [pd.Timestamp(t) for t in ts]
                    _write_parquet(columns, final)
                    n += rows
        wal.unlink(missing_ok=True)
    return n
def read_log(folder: Location | str | Path, last: int | None = None, since: pd.Timestamp | None = None
             ) -> pd.DataFrame:
    """The prediction log (optionally the last N records or those since a time), oldest first."""
    files = as_location(folder).glob("part-*.parquet")
    if not files:
        return pd.DataFrame(columns=META)
    df = pd.concat([f.read_table().to_pandas() for f in files], ignore_index=True).sort_values("timestamp", kind="stable")
    if since is not None:
        df = df[pd.to_datetime(df["timestamp"]) >= since]
    if last is not None:
        df = df.tail(last)
    return df.reset_index(drop=True)
