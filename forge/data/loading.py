"""DataLoader: Ray Data readers for CSV, Parquet, JSON lines and SQL, local or object store."""

from __future__ import annotations

import csv
import glob
import json
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import ray

from forge.config import ColumnSchema, ForgeConfig

_SUFFIX_FORMAT = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json", ".jsonl": "json"}


class SourceError(Exception):
    """The data source cannot be read (missing, unknown format, unreachable)."""


def source_format(cfg: ForgeConfig) -> str:
    if cfg.data.format:
        return cfg.data.format
    src = cfg.data.source
    if src.startswith("sqlite:"):
        return "sql"
    for suffix, fmt in _SUFFIX_FORMAT.items():
        if src.rstrip("/*").endswith(suffix) or src.endswith("*" + suffix):
            return fmt
    raise SourceError(f"data.format: cannot infer the format of {src!r}; set data.format (csv, parquet, json, sql)")


def filesystem(cfg: ForgeConfig) -> tuple[pafs.FileSystem | None, str]:
    """The pyarrow filesystem and path of the source; None for local paths."""
    src = cfg.resolve(cfg.data.source)
    if "://" not in src or src.startswith("file://"):
        return None, src.removeprefix("file://")
    scheme, rest = src.split("://", 1)
    opts = dict(cfg.data.storage_options)
    if scheme == "s3" and opts:
        return pafs.S3FileSystem(**opts), rest
    fs, path = pafs.FileSystem.from_uri(src)
    return fs, path


def _first_file(fs: pafs.FileSystem | None, path: str) -> str:
    fs = fs or pafs.LocalFileSystem()
    if any(ch in path for ch in "*?["):
        hits = sorted(glob.glob(path))
        if not hits:
            raise SourceError(f"data.source: no file matches {path!r}")
        return hits[0]
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"data.source: {path!r} does not exist")
    if info.type == pafs.FileType.Directory:
        files = sorted(
            f.path for f in fs.get_file_info(pafs.FileSelector(path, recursive=True)) if f.type == pafs.FileType.File
        )
        if not files:
            raise SourceError(f"data.source: folder {path!r} is empty")
        return files[0]
    return path


def csv_header(cfg: ForgeConfig) -> list[str]:
    fs, path = filesystem(cfg)
    first = _first_file(fs, path)
    stream = (fs or pafs.LocalFileSystem()).open_input_stream(first)
    line = b""
    while not line.endswith(b"\n"):
        chunk = stream.read(1)
        if not chunk:
            break
        line += chunk
    return next(csv.reader([line.decode().strip()]))


class MalformedLineHandler:
    """pyarrow's invalid_row_handler: records a malformed CSV line, then skips it.

    Runs inside Ray Data's read tasks, so it appends to a file the driver reads
    back into the quarantine; nothing is dropped silently.
    """

    def __init__(self, path: str):
        self.path = path

    def __call__(self, row: Any) -> str:
        rec = {
            "line": row.number,
            "raw": row.text,
            "reason": f"malformed CSV line: expected {row.expected_columns} columns, got {row.actual_columns}",
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        return "skip"


def read_dataset(
    cfg: ForgeConfig, schema: dict[str, ColumnSchema] | None = None, malformed_path: str | None = None
) -> ray.data.Dataset:
    """A streaming Ray Dataset of the source.

    CSV columns are read as strings so that a bad value quarantines its row
    instead of failing the whole read; types are applied by the validator.
    """
    fmt = source_format(cfg)
    if fmt == "sql":
        db = cfg.data.source.removeprefix("sqlite:///")
        db = cfg.resolve(db)
        if not cfg.data.query:
            raise SourceError("data.query: required for a SQL source")
        if not Path(db).exists():
            raise SourceError(f"data.source: SQLite database {db!r} does not exist")
        return ray.data.read_sql(cfg.data.query, lambda: sqlite3.connect(db))
    fs, path = filesystem(cfg)
    _first_file(fs, path)
    paths: str | list[str] = sorted(glob.glob(path)) if fs is None and any(c in path for c in "*?[") else path
    kw: dict[str, Any] = {"filesystem": fs} if fs is not None else {}
    if fmt == "csv":
        cols = csv_header(cfg)
        parse = pacsv.ParseOptions(invalid_row_handler=MalformedLineHandler(malformed_path) if malformed_path else None)
        conv = pacsv.ConvertOptions(column_types={c: pa.string() for c in cols}, strings_can_be_null=True)
        return ray.data.read_csv(paths, parse_options=parse, convert_options=conv, **kw)
    if fmt == "parquet":
        return ray.data.read_parquet(paths, **kw)
    return ray.data.read_json(paths, lines=True, **kw)
