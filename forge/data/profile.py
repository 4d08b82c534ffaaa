"""Schema inference from a pass over the whole source: the observed profile, never hard rules.

A sample from the head of a file cannot describe its tail: a time-ordered file
meets new months, regions and negative values after the sample ends. So types
are proposed from the first rows and then checked on every row with the
validator's own parser (`rows._parse`), in one streamed pass of Arrow
aggregates: in this process for a CSV file of at most `data.in_process_bytes`, through
Ray Data otherwise. What comes out is a profile (types, nullability, observed
categories, observed ranges); only `allowed`, `min`, `max` and `strict` that a
person writes are hard rules, so a schema inferred from a file never
quarantines a well-formed row of that file.
"""

from __future__ import annotations

import os
import pickle  # nosec B403: profiles pickled by our own Ray tasks, read back by the driver that scheduled them
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from forge.config import ColumnSchema, ForgeConfig
from forge.data.rows import MALFORMED, ParseMemo, map_columns, parse_column
from forge.errors import UsageError

CATEGORY_LIMIT = 30  # more distinct values than this: free text or an id, not a category
JUNK_SHARE = 0.01  # a numeric column may hold this share of junk values (quarantined); more is not numeric
_PROFILE = "_forge_profile"


class SchemaInferenceError(UsageError):
    """A column whose type cannot be inferred; the message names it and what was seen."""


@dataclass
class ColumnProfile:
    """What one pass saw of one column; `merge` combines the profiles of two parts of the data."""

    kind: str  # proposed type: int, float, str, bool, datetime
    rows: int = 0
    nulls: int = 0
    bad: int = 0  # present values that do not parse as `kind`
    fractional: int = 0  # numbers that are not whole (an int proposal becomes float)
    examples: list = field(default_factory=list)
    categories: set | None = field(default_factory=set)  # None once past CATEGORY_LIMIT
    lo: float | None = None
    hi: float | None = None

    def merge(self, other: ColumnProfile) -> None:
        self.rows += other.rows
        self.nulls += other.nulls
        self.bad += other.bad
        self.fractional += other.fractional
        self.examples = (self.examples + other.examples)[:3]
        if self.categories is None or other.categories is None:
            self.categories = None
        else:
            self.categories |= other.categories
            if len(self.categories) > CATEGORY_LIMIT:
                self.categories = None
        for attr, pick in (("lo", min), ("hi", max)):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, theirs if mine is None else mine if theirs is None else pick(mine, theirs))


@dataclass
class SourceProfile:
    """The profile of a whole source: rows read and one ColumnProfile per column."""

    rows: int
    columns: dict[str, ColumnProfile]
    sampled: bool = False

    def merge(self, other: SourceProfile) -> SourceProfile:
        self.rows += other.rows
        for name, col in other.columns.items():
            if name in self.columns:
                self.columns[name].merge(col)
            else:
                self.columns[name] = col
        return self


def propose_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """A type per column from the first rows; the full pass confirms or widens it."""
    out = {}
    for col in frame.columns:
        s = frame[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            present = s.dropna().astype(str).str.strip()
            present = present[present != ""]
            if present.empty:
                out[col] = "float"  # nothing seen yet: the pass finds out (numbers, else text)
                continue
            num = pd.to_numeric(present, errors="coerce")
            if num.notna().sum() >= (1 - JUNK_SHARE) * len(present):
                out[col] = "int" if bool(np.all(np.mod(num.dropna(), 1) == 0)) else "float"
            elif _looks_like_dates(present) and pd.to_datetime(present, errors="coerce", format="mixed",
                                                               utc=True).notna().all():
                out[col] = "datetime"
            elif present.str.lower().isin(["true", "false"]).all():
                out[col] = "bool"
            else:
                out[col] = "str"
        elif pd.api.types.is_bool_dtype(s):
            out[col] = "bool"
        elif pd.api.types.is_datetime64_any_dtype(s):
            out[col] = "datetime"
        elif pd.api.types.is_integer_dtype(s):
            out[col] = "int"
        elif pd.api.types.is_numeric_dtype(s):  # whole floats are ints with nulls (pandas' float64 for Int)
            vals = s.dropna().to_numpy(dtype="float64")
            out[col] = "int" if len(vals) and bool(np.all(np.mod(vals, 1) == 0)) else "float"
        else:
            out[col] = "str"
    return out


def _looks_like_dates(s: pd.Series) -> bool:
    return bool(s.head(20).str.match(r"^\d{4}-\d{2}-\d{2}").all())


def profile_table(table: pa.Table, kinds: dict[str, str], memo: ParseMemo | None = None,
                  threads: int = 1) -> SourceProfile:
    """The profile of one Arrow batch, each column parsed as its proposed kind by the validator's parser (memo:
    keeps the parse for the validation pass over the same table; threads: see rows.map_columns)."""
    if MALFORMED in table.column_names:  # malformed lines are no rows of the data: validation quarantines them
        table = table.filter(pc.is_null(table.column(MALFORMED))).drop_columns([MALFORMED])
    names = list(kinds)
    profiles = map_columns(lambda name: _profile_column(table, name, kinds[name], memo), names, threads)
    return SourceProfile(table.num_rows, dict(zip(names, profiles)))


def _profile_column(table: pa.Table, name: str, kind: str, memo: ParseMemo | None) -> ColumnProfile:
    prof = ColumnProfile(kind, rows=table.num_rows)
    if name not in table.column_names:
        prof.nulls = table.num_rows
        return prof
    # An int proposal is parsed as float: a fraction (or a number past int64) widens it, it is no junk.
    raw, missing, present, val, bad = parse_column(table, name, "float" if kind == "int" else kind, memo)
    prof.nulls = int(pc.sum(missing).as_py() or 0)
    prof.bad = int(pc.sum(bad).as_py() or 0)
    if prof.bad:
        prof.examples = raw.filter(bad).slice(0, 3).to_pylist()
    if kind in ("int", "float"):
        good = pc.drop_null(pc.if_else(bad, pa.scalar(None, val.type), val))
        if len(good):
            mm = pc.min_max(good).as_py()
            prof.lo, prof.hi = mm["min"], mm["max"]
            not_int = pc.or_(pc.not_equal(pc.floor(good), good), pc.greater_equal(pc.abs(good), 2.0**63))
            prof.fractional = int(pc.sum(not_int).as_py() or 0)
    # Categories are only kept for text that is, or may turn out to be, a str column (None: not tracked).
    textual = pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type)
    prof.categories = _categories(present) if textual and (kind == "str" or prof.bad) else None
    return prof


def _categories(text: pa.Array) -> set | None:
    distinct = pc.unique(pc.drop_null(text))
    return None if len(distinct) > CATEGORY_LIMIT else set(distinct.to_pylist())


class _BatchProfiler:
    """A Ray Data map_batches callable: each block becomes one row holding its pickled profile."""

    def __init__(self, kinds: dict[str, str]):
        self.kinds = kinds

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.table({_PROFILE: pa.array([pickle.dumps(profile_table(batch, self.kinds))], pa.binary())})


def profile_source(cfg: ForgeConfig, kinds: dict[str, str], tables: list[pa.Table] | None = None,
                   memo: ParseMemo | None = None) -> SourceProfile:
    """One pass over every row of the source (in process for a small CSV file, else Ray Data).

    Args:
        tables: the source already read here (validation reads a small file once for both of its passes).
        memo: keeps the parse of `tables` for the validation pass.

    Malformed lines are skipped here; the validation pass quarantines them.
    """
    from forge.data.csv_ranges import MALFORMED
    from forge.data.loading import local_csv_tables, read_dataset

    total = SourceProfile(0, {c: ColumnProfile(k) for c, k in kinds.items()})
    local = tables if tables is not None else local_csv_tables(cfg)
    if local is not None:
        for table in local:
            if MALFORMED not in table.column_names:
                total.merge(profile_table(table, kinds, memo, threads=os.cpu_count() or 1))
        return total
    ds = read_dataset(cfg).map_batches(
        _BatchProfiler(kinds), batch_format="pyarrow", batch_size=None)
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for blob in batch.column(_PROFILE).to_pylist():
            total.merge(pickle.loads(blob))  # nosec B301: written by _BatchProfiler in this job's own tasks
    return total


@dataclass
class InferredSchema:
    """A schema inferred from a source, with how it was read and what was not clean."""

    schema: dict[str, ColumnSchema]
    rows_read: int
    sampled: bool
    notes: dict[str, str]


def infer_source_schema(cfg: ForgeConfig, head_rows: int = 5000, tables: list[pa.Table] | None = None,
                        memo: ParseMemo | None = None) -> InferredSchema:
    """Types proposed from the first rows, then confirmed or widened on every row of the source (`tables`: the
    source already read in this process; `memo`: keeps their parse for validation)."""
    from forge.data.loading import sample

    kinds = propose_kinds(sample(cfg, head_rows))
    profile = profile_source(cfg, kinds, tables, memo)
    schema, notes = settle(profile, cfg.data.target)
    return InferredSchema(schema, profile.rows, profile.sampled, notes)


def settle(profile: SourceProfile, target: str | None) -> tuple[dict[str, ColumnSchema], dict[str, str]]:
    """The inferred schema, and a note per column whose values were not all clean.

    Raises:
        SchemaInferenceError: a column with no value at all, or numbers mixed with too much text to tell.
    """
    schema, notes = {}, {}
    for name, col in profile.columns.items():
        present = col.rows - col.nulls
        if present == 0:
            raise SchemaInferenceError(
                f"column {name!r}: all {col.rows} values are null, so its type cannot be inferred; "
                f"declare it under data.schema or drop it from the source")
        kind = col.kind
        if col.bad and kind in ("int", "float"):
            share = col.bad / present
            if share > 0.5:
                kind = "str"
            elif share > JUNK_SHARE:
                raise SchemaInferenceError(
                    f"column {name!r}: {present - col.bad} of {present} values are numbers and {col.bad} are not "
                    f"(e.g. {col.examples}); declare its type under data.schema (str keeps every row)")
            else:
                notes[name] = (f"{col.bad} of {present} values are not numbers (e.g. {col.examples}): "
                               f"they will be quarantined")
        elif col.bad:
            kind = "str"  # a date or bool proposal that some value breaks: text keeps every row
        if kind == "int" and col.fractional:
            kind = "float"
        cats = sorted(col.categories) if kind == "str" and col.categories is not None and name != target else None
        schema[name] = ColumnSchema(type=kind, nullable=bool(col.nulls) or name != target, categories=cats)
    return schema, notes
