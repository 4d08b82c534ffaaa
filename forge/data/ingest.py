"""ingest + validate + version: the first stage of the pipeline, streaming end to end.

Ray Data reads and validates batches in parallel; the driver streams the
tagged batches into two Parquet writers (valid snapshot, quarantine), so no
process holds the whole file.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forge.config import ColumnSchema, ForgeConfig
from forge.data.csv_ranges import line_numbers
from forge.data.health import excluded_columns, feature_warnings
from forge.data.loading import filesystem, local_csv_tables, read_dataset, source_format
from forge.data.profile import infer_source_schema
from forge.data.rows import MALFORMED, RAW, REASON, ParseMemo, RowValidator, arrow_schema
from forge.data.validation import DatasetStats, dataset_checks
from forge.data.versioning import DatasetVersion, commit_version, content_version
from forge.errors import ForgeError
from forge.storage import Location
from forge.workspace import Workspace

QUARANTINE = "quarantine.parquet"
_QSCHEMA = pa.schema([("line", pa.int64()), ("reason", pa.string()), ("raw", pa.string())])


class DataCheckError(ForgeError):
    """Dataset-level checks failed; nothing downstream may run."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


@dataclass
class ValidationResult:
    dataset: DatasetVersion
    created: bool
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    report_path: Location
    quarantine_path: Location
    report: dict

    @property
    def schema(self) -> dict[str, ColumnSchema]:
        """The schema the rows were validated against (declared, or inferred from every row)."""
        return {k: ColumnSchema(**v) for k, v in self.report["schema"].items()}

    @property
    def excluded_features(self) -> list[str]:
        """Constant and ID-like columns, left out of the features unless `features.keep` names them."""
        return excluded_columns(self.report.get("warnings", []))

    def summary(self) -> dict:
        return {
            "data_version": self.dataset.version,
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "report_path": str(self.report_path),
            "quarantine_path": str(self.quarantine_path),
            "quarantined_fraction": self.report.get("quarantined_fraction", 0.0),
            "warnings": self.report.get("warnings", []),
        }


def resolve_schema(cfg: ForgeConfig, tables: list[pa.Table] | None = None,
                   memo: ParseMemo | None = None) -> dict[str, ColumnSchema]:
    """The declared schema, or the profile of every row of the source (never hard rules)."""
    if cfg.data.schema_:
        return cfg.data.schema_
    return infer_source_schema(cfg, tables=tables, memo=memo).schema


def validate_dataset(cfg: ForgeConfig, progress=None, lineage: dict | None = None) -> ValidationResult:
    """Read, validate, quarantine and version the configured source.

    Args:
        lineage: extra manifest fields of a new version (a retraining names the data it was built from).

    Raises:
        DataCheckError: a dataset-level check failed (the report is written first).
    """
    ws = Workspace.from_config(cfg)
    stage = ws.staging() / uuid.uuid4().hex
    stage.mkdir(parents=True)
    try:
        return _validate(cfg, ws, stage, progress, lineage or {})
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@dataclass
class _Pass:
    """What one streaming pass over the source saw."""

    stats: DatasetStats
    rows_seen: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list] = field(default_factory=dict)


def _validate(cfg: ForgeConfig, ws: Workspace, stage: Path, progress, lineage: dict) -> ValidationResult:
    # A small CSV whose schema is inferred is read here once for both passes (inference, then validation):
    # parsing it twice was a third of the time at 500k rows. A declared schema needs one pass, streamed.
    local = local_csv_tables(cfg, keep_malformed=True) if not cfg.data.schema_ else None
    tables = list(local) if local is not None else None
    memo = ParseMemo() if tables is not None else None  # the inference pass's parse, reused by validation
    schema = resolve_schema(cfg, tables, memo)
    target = cfg.data.target
    if target not in schema:
        raise DataCheckError(f"data.target: column {target!r} is not in the data ({', '.join(schema)})", {})
    seen = _stream(cfg, schema, stage, progress, tables, memo)
    rows_seen, rows_valid = seen.rows_seen, seen.stats.rows_valid
    schema_json = json.dumps({k: v.model_dump(exclude_none=True) for k, v in schema.items()}, sort_keys=True)
    version = content_version(schema_json, seen.stats.sorted_hashes())
    report = _report(cfg, schema, seen, version, json.loads(schema_json))
    report_path = ws.reports() / f"validation-{cfg.name}-{version}.json"
    report_path.write_text(json.dumps(report, indent=2, default=str))
    report["report_path"] = str(report_path)
    if not report["passed"]:
        failed = ", ".join(c["check"] for c in report["dataset_checks"] if not c["passed"])
        raise DataCheckError(f"dataset checks failed: {failed} (report: {report_path})", report)
    manifest = {
        "source": cfg.data.source, "format": source_format(cfg), "schema": json.loads(schema_json),
        "rows": rows_valid, "rows_in": rows_seen, "rows_quarantined": rows_seen - rows_valid, "hash": version,
        "target": target, "timestamp": cfg.data.timestamp, "entity": cfg.data.entity,
        "validation_report": str(report_path), "excluded_features": excluded_columns(report["warnings"]), **lineage,
    }
    dv, created = commit_version(ws, cfg.name, version, stage / "data.parquet", manifest)
    qdir = ws.quarantine(cfg.name) / version
    # Like the report, the quarantine is the latest run's: the same valid rows can come with other bad ones.
    (qdir / QUARANTINE).upload(stage / QUARANTINE)
    return ValidationResult(dv, created, rows_seen, rows_valid, rows_seen - rows_valid, report_path,
                            qdir / QUARANTINE, report)


def _stream(cfg: ForgeConfig, schema: dict[str, ColumnSchema], stage: Path, progress,
            tables: list[pa.Table] | None = None, memo: ParseMemo | None = None) -> _Pass:
    """One pass: valid rows to stage/data.parquet, quarantined ones (with reasons) to stage/quarantine.parquet."""
    malformed: list[dict] = []  # malformed CSV lines, numbered once the pass is over
    valid_schema = arrow_schema(schema)
    soft = {c: s.categories for c, s in schema.items() if s.categories is not None and s.hard_categories() is None}
    seen = _Pass(DatasetStats(columns=list(schema), categories=soft))
    # Dictionary-encode the text columns only: trying it on every float column tripled the write time.
    text = [f.name for f in valid_schema if pa.types.is_string(f.type)]
    # Valid rows are encoded on a writer thread (Parquet encoding releases the GIL) while the next batch is
    # checked: written in line, it was 15% of an in-process validation of 500k rows with the second core idle.
    with pq.ParquetWriter(stage / "data.parquet", valid_schema, use_dictionary=text) as vw, pq.ParquetWriter(
        stage / QUARANTINE, _QSCHEMA
    ) as qw, ThreadPoolExecutor(1, thread_name_prefix="forge-write") as writer:
        written: list[Future] = []
        for batch in _tagged_batches(cfg, schema, tables, memo):
            seen.rows_seen += batch.num_rows
            bad_mask = pc.is_valid(batch.column(REASON))
            good = batch.filter(pc.invert(bad_mask))
            seen.stats.add(good, cfg.data.target)
            written.append(writer.submit(vw.write_table, good.select(valid_schema.names).cast(valid_schema)))
            if len(written) > 2:  # at most two batches wait: memory stays bounded on a long stream
                written.pop(0).result()
            bad = batch.filter(bad_mask)
            if bad.column(MALFORMED).null_count < bad.num_rows:
                malformed += [json.loads(r) for r in bad.column(MALFORMED).drop_null().to_pylist()]
                bad = bad.filter(pc.is_null(bad.column(MALFORMED)))
            if bad.num_rows:
                reasons = bad.column(REASON)
                qw.write_table(pa.table({"line": pa.nulls(bad.num_rows, pa.int64()), "reason": reasons,
                                         "raw": bad.column(RAW)}, schema=_QSCHEMA))
                _tally(reasons.to_pylist(), seen.counts, seen.examples)
            if progress:
                progress(seen.rows_seen)
        for done in written:
            done.result()  # a write error is raised here, before the writers close
        if malformed:
            recs = line_numbers(filesystem(cfg)[0], malformed)
            qw.write_table(pa.Table.from_pylist(recs, schema=_QSCHEMA))
            _tally([r["reason"] for r in recs], seen.counts, seen.examples)
    return seen


def _tagged_batches(cfg: ForgeConfig, schema: dict[str, ColumnSchema], tables: list[pa.Table] | None,
                    memo: ParseMemo | None = None):
    """The source's rows tagged by RowValidator: in this process for a small CSV file, else on Ray Data."""
    local = tables if tables is not None else local_csv_tables(cfg, keep_malformed=True)
    if local is not None:
        validator = RowValidator(schema, memo, threads=os.cpu_count() or 1)  # this process has the cores
        return (validator(table) for table in local)
    validator = RowValidator(schema)
    ds = read_dataset(cfg, schema, keep_malformed=True).map_batches(validator, batch_format="pyarrow",
                                                                    batch_size=None)
    return ds.iter_batches(batch_format="pyarrow", batch_size=None)


def _report(cfg: ForgeConfig, schema: dict[str, ColumnSchema], seen: _Pass, version: str, schema_json: dict) -> dict:
    """The validation report: counts that reconcile, reasons with examples, checks, warnings."""
    rows_seen, rows_valid = seen.rows_seen, seen.stats.rows_valid
    checks = dataset_checks(seen.stats, cfg.data.checks, cfg.data.target, rows_seen)
    skip = {cfg.data.timestamp, cfg.data.entity, *cfg.features.drop} - {None}
    warnings = feature_warnings(seen.stats.sample(list(schema)), schema, cfg.data.target, cfg.training.task, skip)
    return {
        "dataset": cfg.name, "source": cfg.data.source, "format": source_format(cfg), "data_version": version,
        "rows_in": rows_seen, "rows_valid": rows_valid, "rows_quarantined": rows_seen - rows_valid,
        "quarantined_fraction": round((rows_seen - rows_valid) / rows_seen, 6) if rows_seen else 0.0,
        "row_failures": {k: {"count": v, "examples": seen.examples[k]}
                         for k, v in sorted(seen.counts.items(), key=lambda kv: (-kv[1], kv[0]))},
        "new_categories": seen.stats.new_categories, "warnings": warnings, "dataset_checks": checks,
        "passed": all(c["passed"] for c in checks), "schema": schema_json,
    }


def _tally(reasons: list[str], counts: dict[str, int], examples: dict[str, list]) -> None:
    for r in reasons:
        kind = _kind(r)
        counts[kind] = counts.get(kind, 0) + 1
        ex = examples.setdefault(kind, [])
        if len(ex) < 3:
            ex.append(r)


def _kind(reason: str) -> str:
    """Group reasons by check, not by value: "column 'a': cannot parse x as int" -> "column 'a': cannot parse"."""
    head, _, tail = reason.partition(": ")
    for key in ("cannot parse", "null not allowed", "below min", "above max", "unknown category", "not a finite",
                "expected", "column missing"):
        if key in tail:
            return f"{head}: {key}"
    return head
