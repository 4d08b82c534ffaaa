"""Row-level checks on Arrow batches: each bad row gets the first reason that applies, and is quarantined.

Everything runs as Arrow compute kernels on the batch Ray Data hands over, with
no pandas round trip: a 20-column batch of strings is typed and checked at C
speed, and a reason string is built only for the rows that fail. A column that
Arrow cannot parse in one go (one junk value, a time zone offset) goes through
pandas for that batch only, so every reason stays exact.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from forge.config import ColumnSchema

REASON = "_forge_reason"
RAW = "_forge_raw"
HASH = "_forge_hash"
MALFORMED = "_forge_malformed"  # a block of malformed CSV lines (JSON records), from the reader
_ARROW = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(), "datetime": pa.timestamp("us")}
_TRUE, _FALSE = ["true", "1", "yes"], ["false", "0", "no"]
_INT_LIMIT = 2.0**63  # a whole number beyond int64 cannot be stored as one


def arrow_schema(schema: dict[str, ColumnSchema]) -> pa.Schema:
    return pa.schema([(name, _ARROW[c.type]) for name, c in schema.items()])


class RowValidator:
    """Types the columns of an Arrow batch and tags each row with a quarantine reason (or null).

    Returns the typed columns plus REASON, RAW (the raw row as JSON, for bad rows) and
    HASH (a content hash of the typed row, for duplicates and the dataset version).
    """

    def __init__(self, schema: dict[str, ColumnSchema], memo: ParseMemo | None = None, threads: int = 1):
        self.schema = schema
        self.arrow = arrow_schema(schema)
        self.memo = memo  # in process only: the profile pass's parse of the same tables
        self.threads = threads  # in process: the machine's cores (see map_columns)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if MALFORMED in batch.column_names:
            # Ray Data may hand a read task's two blocks (rows, malformed lines) over as one, nulls filling in.
            bad = pc.is_valid(batch.column(MALFORMED))
            rows = self._check(batch.filter(pc.invert(bad)).drop_columns([MALFORMED]))
            return pa.concat_tables([rows, self._malformed(batch.column(MALFORMED).filter(bad))])
        out = self._check(batch)
        if self.memo is not None:
            self.memo.release(batch)
        return out

    def _check(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        reasons = np.full(n, None, dtype=object)
        done = np.zeros(n, dtype=bool)

        def mark(mask, msg) -> None:
            """Give rows in mask (that have none yet) a reason: text, or a function of their row numbers."""
            idx = np.flatnonzero(_np(mask) & ~done)
            if len(idx):
                reasons[idx] = msg(idx) if callable(msg) else msg
                done[idx] = True

        typed = []
        parsed = _parse_columns(batch, self.schema, self.memo, self.threads)
        for col, spec in self.schema.items():
            if col not in batch.column_names:
                mark(np.ones(n, bool), f"{col}: column missing")
                typed.append(pa.nulls(n, _ARROW[spec.type]))
                continue
            raw, missing, _, val, bad = parsed[col]
            mark(bad, lambda i, raw=raw, col=col, t=spec.type: [
                f"column '{col}': cannot parse {v} as {t}" for v in raw.take(i).to_pylist()])
            if spec.type == "float":
                mark(pc.invert(pc.or_(pc.is_finite(val).fill_null(True), bad)), f"column '{col}': not a finite number")
            if not spec.nullable:
                mark(missing, f"column '{col}': null not allowed")
            if spec.type in ("int", "float"):
                if spec.min is not None:
                    mark(pc.less(val, spec.min), lambda i, val=val, col=col, lo=spec.min: [
                        f"column '{col}': below min {lo:g} (got {float(v)})" for v in val.take(i).to_pylist()])
                if spec.max is not None:
                    mark(pc.greater(val, spec.max), lambda i, val=val, col=col, hi=spec.max: [
                        f"column '{col}': above max {hi:g} (got {float(v)})" for v in val.take(i).to_pylist()])
            hard = spec.hard_categories()
            if hard is not None and spec.type == "str":
                known = pc.or_(pc.is_in(val, pa.array(hard, pa.string())), missing)
                mark(pc.invert(known), lambda i, val=val, col=col: [
                    f"column '{col}': unknown category {v}" for v in val.take(i).to_pylist()])
            keep = pc.invert(pc.or_(bad, missing))
            typed.append(pc.cast(pc.if_else(keep, val, pa.scalar(None, val.type)), _ARROW[spec.type]))
        raw_json = np.full(n, None, dtype=object)
        if done.any():  # quarantined rows keep their raw values, as JSON
            idx = np.flatnonzero(done)
            raw_json[idx] = [json.dumps(r, default=str) for r in batch.take(idx).to_pylist()]
        out = pa.Table.from_arrays(typed, schema=self.arrow)
        return (
            out.append_column(REASON, pa.array(reasons, pa.string()))
            .append_column(RAW, pa.array(raw_json, pa.string()))
            .append_column(HASH, pa.array(row_hashes(out), pa.uint64()))
            .append_column(MALFORMED, pa.nulls(n, pa.string()))
        )

    def _malformed(self, records: pa.ChunkedArray) -> pa.Table:
        """A block of malformed lines (from the CSV reader) in the output schema: quarantined, reason and text kept."""
        recs = [json.loads(r) for r in records.to_pylist() if r is not None]
        n = len(recs)
        out = pa.Table.from_arrays([pa.nulls(n, f.type) for f in self.arrow], schema=self.arrow)
        return (
            out.append_column(REASON, pa.array([r["reason"] for r in recs], pa.string()))
            .append_column(RAW, pa.array([r["raw"] for r in recs], pa.string()))
            .append_column(HASH, pa.array(np.zeros(n, np.uint64), pa.uint64()))
            .append_column(MALFORMED, records.combine_chunks())
        )


class ParseMemo:
    """Columns parsed once for two passes over the same tables in this process (schema inference, then
    validation): each column's missing mask and its numeric cast were computed twice, a quarter of the in-process
    validation of 500k rows. Entries are keyed by the table object and hold it, so its id cannot be reused."""

    def __init__(self):
        self._entries: dict[tuple, tuple[pa.Table, object]] = {}

    def get(self, table: pa.Table, key: tuple, compute):
        hit = self._entries.get((id(table), *key))
        if hit is None:
            hit = self._entries[(id(table), *key)] = (table, compute())
        return hit[1]

    def release(self, table: pa.Table) -> None:
        """Forget a table's columns once its last pass is done."""
        for key in [k for k in self._entries if k[0] == id(table)]:
            del self._entries[key]


class ParsedColumn(NamedTuple):
    raw: pa.Array  # the column's values as read
    missing: pa.Array  # null, NaN or blank
    present: pa.Array  # raw with the missing values null
    values: pa.Array  # present parsed as the kind
    bad: pa.Array  # present values that do not parse


def parse_column(table: pa.Table, name: str, kind: str, memo: ParseMemo | None = None) -> ParsedColumn:
    """A column parsed as `kind`, by the profile pass and the validator alike. With a memo, the missing mask and
    the float64 cast (an int and a float column parse alike) are computed once for both passes; the combined and
    masked copies of the text are not kept: holding them made the second pass slower than parsing again (page
    faults on 3x the memory)."""
    raw = table.column(name).combine_chunks()
    missing = memo.get(table, (name, "missing"), lambda: _missing(raw)) if memo is not None else _missing(raw)
    present = pc.if_else(missing, pa.scalar(None, raw.type), raw)
    floats = None
    if kind in ("int", "float"):
        floats = memo.get(table, (name, "float"), lambda: _to_float(present)) if memo is not None else None
    values, bad = _parse(present, kind, floats)
    return ParsedColumn(raw, missing, present, values, pc.and_(bad, pc.invert(missing)))


def map_columns(fn, names: list[str], threads: int = 1) -> list:
    """`fn` of each column name, in order; on up to `threads` threads when there are more columns than one.

    Arrow's casts, masks and aggregates release the GIL: in this process, one column at a time left the second core
    idle for a quarter of a validation of 500k rows. A Ray Data task keeps threads=1: it holds one CPU of its node.
    """
    if threads <= 1 or len(names) <= 1:
        return [fn(name) for name in names]
    with ThreadPoolExecutor(min(threads, len(names)), thread_name_prefix="forge-columns") as pool:
        return list(pool.map(fn, names))


def _parse_columns(batch: pa.Table, schema: dict[str, ColumnSchema], memo: ParseMemo | None,
                   threads: int) -> dict[str, ParsedColumn]:
    """Every column of `schema` that `batch` has, parsed (on threads: see map_columns); the caller gives the
    reasons in column order."""
    names = [c for c in schema if c in batch.column_names]
    return dict(zip(names, map_columns(lambda c: parse_column(batch, c, schema[c].type, memo), names, threads)))


def _to_float(raw: pa.Array) -> pa.Array:
    return _cast_or(raw, pa.float64(), lambda s: pd.to_numeric(s, errors="coerce").astype("float64"))


def _np(mask) -> np.ndarray:
    if isinstance(mask, np.ndarray):
        return mask
    return mask.fill_null(False).to_numpy(zero_copy_only=False)


def _missing(raw: pa.Array) -> pa.Array:
    """Null, NaN, or only whitespace (the CSV reader already turned empty fields into nulls)."""
    if pa.types.is_null(raw.type):
        return pa.array(np.ones(len(raw), bool))
    missing = pc.is_null(raw, nan_is_null=True)
    if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        # utf8_is_space is false for "", hence the length test; half the time of trimming and comparing.
        blank = pc.or_(pc.utf8_is_space(raw), pc.equal(pc.binary_length(raw), 0)).fill_null(False)
        missing = pc.or_(missing, blank)
    return missing


def _parse(raw: pa.Array, kind: str, floats: pa.Array | None = None) -> tuple[pa.Array, pa.Array]:
    """(values, mask of values that do not parse); missing values are null in raw and in the result.

    Args:
        floats: raw as float64 already (memoised by parse_column), for an int or float kind; None casts here.
    """
    textual = pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type)
    if kind in ("int", "float"):
        val = floats if floats is not None else _to_float(raw)
        bad = pc.and_(pc.is_null(val), pc.is_valid(raw))
        if kind == "int":  # whole, finite and within int64, or it is not an int
            whole = pc.and_(pc.equal(pc.floor(val), val), pc.less(pc.abs(val), _INT_LIMIT)).fill_null(True)
            bad = pc.or_(bad, pc.invert(whole))
        return val, bad
    if kind == "bool":
        low = pc.utf8_lower(pc.utf8_trim_whitespace(raw if textual else pc.cast(raw, pa.string())))
        known = pc.is_in(low, pa.array(_TRUE + _FALSE))
        val = pc.if_else(known, pc.is_in(low, pa.array(_TRUE)), pa.scalar(None, pa.bool_()))
        return val, pc.and_(pc.invert(known), pc.is_valid(raw))
    if kind == "datetime":
        if textual:  # parsed to ns (text may carry them), stored in us as every datetime column
            val = pc.cast(_cast_or(raw, pa.timestamp("ns"), _to_datetime), pa.timestamp("us"), safe=False)
        else:
            val = pc.cast(raw, pa.timestamp("us"))
        return val, pc.and_(pc.is_null(val), pc.is_valid(raw))
    return (raw if textual else pc.cast(raw, pa.string())), pa.array(np.zeros(len(raw), bool))


def _cast_or(raw: pa.Array, to: pa.DataType, slow) -> pa.Array:
    """Arrow's cast, or (when any value refuses) the pandas function slow, with unparseable values as null."""
    try:
        return pc.cast(raw, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        series = pd.Series(raw.to_numpy(zero_copy_only=False), dtype=object)
        return pc.cast(pa.array(slow(series), from_pandas=True), to, safe=False)


def _to_datetime(s: pd.Series) -> pd.Series:
    # Times with a zone are stored as UTC (zones may differ row to row), as Arrow casts zoned timestamps.
    return pd.to_datetime(s, errors="coerce", format="mixed", utc=True).dt.tz_localize(None)


def row_hashes(table: pa.Table) -> np.ndarray:
    """A 64-bit content hash per row of typed columns, the same in every process and run.

    Text is hashed through its dictionary (each distinct value once), so a
    low-cardinality column costs one pass over its codes.
    """
    h = np.zeros(table.num_rows, dtype=np.uint64)
    for column in table.columns:
        arr = column.combine_chunks()
        if pa.types.is_string(arr.type):
            enc = arr.dictionary_encode()
            codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
            words = pd.util.hash_array(enc.dictionary.to_numpy(zero_copy_only=False).astype(object))
            col = np.append(words, np.uint64(0x5BD1E995))[codes]  # code -1 (null) picks the last entry
        elif pa.types.is_floating(arr.type):
            col = pd.util.hash_array(arr.fill_null(np.nan).to_numpy(zero_copy_only=False))
        else:  # int, bool, timestamp: their integer view; null gets a value of its own
            ints = pc.cast(arr, pa.int64()) if not pa.types.is_timestamp(arr.type) else arr.view(pa.int64())
            col = pd.util.hash_array(ints.fill_null(-(2**62)).to_numpy(zero_copy_only=False))
        with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
            h = (h ^ col) * np.uint64(0x100000001B3) + np.uint64(0x9E3779B97F4A7C15)
    return h
