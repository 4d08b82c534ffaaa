"""DataValidator: schema inference, row-level checks (quarantine) and dataset-level checks.

Row checks live in forge/data/rows.py (Arrow kernels on Ray Data batches).
Dataset checks run on the running totals the driver accumulates while it
streams the valid rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from forge.config import ColumnSchema, DataChecks
from forge.data.rows import HASH

_MAX_CATEGORIES = 30


def infer_schema(df: pd.DataFrame, target: str | None = None) -> dict[str, ColumnSchema]:
    """Types, nullability, a non-negativity floor and low-cardinality categories from a sample."""
    out: dict[str, ColumnSchema] = {}
    for col in df.columns:
        s = df[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            as_num = _to_num(s)
            # A column of numbers with a few junk values is numeric; the junk is quarantined later.
            if s.notna().any() and as_num.notna().sum() >= 0.99 * s.notna().sum():
                s = as_num
            else:
                as_dt = pd.to_datetime(s, errors="coerce", format="mixed") if _looks_like_dates(s) else None
                if as_dt is not None and as_dt.notna().sum() == s.notna().sum():
                    s = as_dt
        nullable = bool(s.isna().any()) or col != target
        if pd.api.types.is_bool_dtype(s):
            out[col] = ColumnSchema(type="bool", nullable=nullable)
        elif pd.api.types.is_datetime64_any_dtype(s):
            out[col] = ColumnSchema(type="datetime", nullable=nullable)
        elif pd.api.types.is_numeric_dtype(s):
            vals = s.dropna().astype("float64").to_numpy()
            is_int = bool(len(vals)) and bool(np.all(np.mod(vals, 1) == 0))
            floor = 0.0 if len(vals) and vals.min() >= 0 else None
            out[col] = ColumnSchema(type="int" if is_int else "float", nullable=nullable, min=floor)
        else:
            cats = s.dropna().astype(str).unique()
            allowed = sorted(cats.tolist()) if len(cats) <= _MAX_CATEGORIES and col != target else None
            out[col] = ColumnSchema(type="str", nullable=nullable, allowed=allowed)
    return out


def _looks_like_dates(s: pd.Series) -> bool:
    sample = s.dropna().astype(str).head(20)
    return len(sample) > 0 and sample.str.match(r"^\d{4}-\d{2}-\d{2}").all()


def _to_num(s: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s) and s.dtype != bool:
        return s.astype("float64")
    if pd.api.types.is_string_dtype(s) and s.dtype != object:
        # Fast path: Arrow casts a clean column at C speed; one bad value anywhere falls back to the slow path.
        try:
            return pd.Series(pc.cast(pa.array(s), pa.float64()).to_numpy(zero_copy_only=False), index=s.index)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    # Through object dtype: on Arrow-backed strings to_numeric yields NaN, not NA, for junk.
    return pd.to_numeric(s.astype(object), errors="coerce").astype("float64")


@dataclass
class DatasetStats:
    """Running totals over the valid rows, for the dataset-level checks."""

    columns: list[str]
    rows_valid: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    target_values: set = field(default_factory=set)
    hashes: list[np.ndarray] = field(default_factory=list)
    _sorted: np.ndarray | None = field(default=None, repr=False)

    def add(self, table: pa.Table, target: str) -> None:
        self.rows_valid += table.num_rows
        for col in self.columns:
            self.nulls[col] = self.nulls.get(col, 0) + table.column(col).null_count
        if len(self.target_values) < 3 and target in table.column_names:
            self.target_values.update(table.column(target).drop_null().unique().to_pylist()[:3])
        self.hashes.append(table.column(HASH).to_numpy())

    def sorted_hashes(self) -> np.ndarray:
        """All row hashes, sorted (once: the duplicate check and the content version both use them)."""
        if self._sorted is None or len(self._sorted) != self.rows_valid:
            self._sorted = np.sort(np.concatenate(self.hashes)) if self.hashes else np.array([], np.uint64)
        return self._sorted


def dataset_checks(stats: DatasetStats, checks: DataChecks, target: str, rows_in: int) -> list[dict]:
    """Dataset-level check results: name, passed, observed, expected."""
    n = stats.rows_valid
    hashes = stats.sorted_hashes()
    dup = 0.0 if n == 0 else 1 - (1 + int(np.count_nonzero(np.diff(hashes)))) / n  # distinct rows of sorted hashes
    quarantined = rows_in - n
    worst_col, worst_null = max(((c, v / n if n else 1.0) for c, v in stats.nulls.items()), key=lambda x: x[1],
                                default=("", 0.0))
    out = [
        {"check": "min_rows", "passed": n >= checks.min_rows, "observed": n, "expected": f">= {checks.min_rows}"},
        {"check": "target_present", "passed": target in stats.columns, "observed": target in stats.columns,
         "expected": True},
        {"check": "target_not_constant", "passed": len(stats.target_values) >= 2,
         "observed": len(stats.target_values), "expected": ">= 2 distinct values"},
        {"check": "max_null_fraction", "passed": worst_null <= checks.max_null_fraction,
         "observed": {"column": worst_col, "fraction": round(worst_null, 4)},
         "expected": f"<= {checks.max_null_fraction}"},
        {"check": "max_duplicate_rate", "passed": dup <= checks.max_duplicate_rate, "observed": round(dup, 4),
         "expected": f"<= {checks.max_duplicate_rate}"},
        {"check": "quarantine_rate", "passed": rows_in == 0 or quarantined / rows_in <= checks.fail_on_quarantine_rate,
         "observed": round(quarantined / rows_in, 4) if rows_in else 0.0,
         "expected": f"<= {checks.fail_on_quarantine_rate}"},
    ]
    return out
