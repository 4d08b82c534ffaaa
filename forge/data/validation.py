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
from forge.data.profile import profile_table, propose_kinds, settle
from forge.data.rows import HASH


def infer_schema(df: pd.DataFrame, target: str | None = None) -> dict[str, ColumnSchema]:
    """The observed profile of a whole frame (types, nullability, observed categories): no hard rules.

    Raises:
        SchemaInferenceError: a column whose type cannot be inferred, named with what was seen.
    """
    kinds = propose_kinds(df)
    table = pa.Table.from_pandas(df, preserve_index=False)
    return settle(profile_table(table, kinds), target)[0]


@dataclass
class DatasetStats:
    """Running totals over the valid rows, for the dataset-level checks."""

    columns: list[str]
    rows_valid: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    target_values: set = field(default_factory=set)
    hashes: list[np.ndarray] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)  # observed (soft) categories per column
    new_categories: dict[str, dict] = field(default_factory=dict)  # column -> {count, examples}
    sample_rows: int = 20_000
    _parts: list[pa.Table] = field(default_factory=list, repr=False)
    _weights: list[np.ndarray] = field(default_factory=list, repr=False)  # rows each sampled row stands for
    _sorted: np.ndarray | None = field(default=None, repr=False)

    def add(self, table: pa.Table, target: str) -> None:
        self.rows_valid += table.num_rows
        self._count_new_categories(table)
        if table.num_rows:  # a bounded uniform share of every batch, for the feature-health checks
            rng = np.random.default_rng(len(self._parts))
            take = min(table.num_rows, self.sample_rows)
            self._parts.append(table.take(np.sort(rng.choice(table.num_rows, take, replace=False))))
            self._weights.append(np.full(take, table.num_rows / take))
        for col in self.columns:
            self.nulls[col] = self.nulls.get(col, 0) + table.column(col).null_count
        if len(self.target_values) < 3 and target in table.column_names:
            self.target_values.update(table.column(target).drop_null().unique().to_pylist()[:3])
        self.hashes.append(table.column(HASH).to_numpy())

    def _count_new_categories(self, table: pa.Table) -> None:
        for col, known in self.categories.items():
            if col not in table.column_names:
                continue
            values = table.column(col)
            new = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, pa.array(known, pa.string()))))
            hits = values.filter(new)
            if len(hits):
                entry = self.new_categories.setdefault(col, {"count": 0, "examples": []})
                entry["count"] += len(hits)
                seen = entry["examples"]
                seen += [v for v in pc.unique(hits.combine_chunks()).slice(0, 3).to_pylist() if v not in seen]
                del seen[3:]

    def sample(self, columns: list[str]) -> pd.DataFrame:
        """A uniform sample of at most sample_rows valid rows (each batch gave rows in proportion to its size)."""
        if not self._parts:
            return pd.DataFrame(columns=columns)
        table = pa.concat_tables(self._parts).select(columns)
        if table.num_rows > self.sample_rows:
            weights = np.concatenate(self._weights)
            idx = np.random.default_rng(0).choice(table.num_rows, self.sample_rows, replace=False, p=weights / weights.sum())
            table = table.take(np.sort(idx))
        return table.to_pandas()

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
        {"check": "max_quarantined_fraction",
         "passed": rows_in == 0 or quarantined / rows_in <= checks.max_quarantined_fraction,
         "observed": round(quarantined / rows_in, 4) if rows_in else 0.0,
         "expected": f"<= {checks.max_quarantined_fraction}"},
    ]
    return out


def report_lines(report: dict, top: int = 5) -> list[str]:
    """The validation report for a terminal: counts, the quarantined share, top reasons, new categories, warnings."""
    lines = [f"{report['rows_valid']:,}/{report['rows_in']:,} rows valid, {report['rows_quarantined']:,} quarantined "
             f"({report.get('quarantined_fraction', 0.0):.2%})"]
    for kind, info in list(report.get("row_failures", {}).items())[:top]:
        lines.append(f"  {info['count']:>9,}  {kind}  e.g. {info['examples'][0]}")
    for col, info in report.get("new_categories", {}).items():
        lines.append(f"  {info['count']:>9,}  column '{col}': categories not seen by `forge init` "
                     f"(kept, counted as drift) e.g. {info['examples']}")
    for w in report.get("warnings", []):
        lines.append(f"  warning: {w['kind']}: {', '.join(w['columns'])}: {w['detail']}")
    return lines
