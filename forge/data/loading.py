"""DataLoader: Ray Data readers for CSV, Parquet, JSON lines and SQL, local or object store."""

from __future__ import annotations

import glob
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import ray

from forge.config import ColumnSchema, ForgeConfig
from forge.data.csv_ranges import CSVRanges, head
from forge.data.formats import format_of
from forge.errors import UsageError
from forge.storage import filesystem_for


class SourceError(UsageError):
    """The data source cannot be read (missing, unknown format, unreachable)."""


def source_format(cfg: ForgeConfig) -> str:
    if cfg.data.format:
        return cfg.data.format
    src = cfg.data.source
    if src.startswith("sqlite:"):
        return "sql"
    fmt = format_of(src, default=None)
    if fmt is not None:
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
    # The workspace's object-store settings (endpoint, region) apply to data sources on the same store.
    return filesystem_for(src, cfg.object_store.endpoint_url, cfg.object_store.region)


def source_files(fs: pafs.FileSystem | None, path: str) -> list[str]:
    """The files of a source: the file, the glob's matches, or a folder's files (not hidden ones, as Ray)."""
    fs = fs or pafs.LocalFileSystem()
    if any(ch in path for ch in "*?["):
        hits = sorted(glob.glob(path))
        if not hits:
            raise SourceError(f"data.source: no file matches {path!r}")
        return hits
    try:
        info = fs.get_file_info(path)
    except OSError as e:  # unreachable endpoint, missing or wrong credentials
        raise SourceError(f"data.source: cannot read {path!r}: {e}") from e
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"data.source: {path!r} does not exist")
    if info.type == pafs.FileType.Directory:
        files = sorted(
            f.path for f in fs.get_file_info(pafs.FileSelector(path, recursive=True))
            if f.type == pafs.FileType.File and not f.path[len(path):].lstrip("/").startswith((".", "_"))
        )
        if not files:
            raise SourceError(f"data.source: folder {path!r} is empty")
        return files
    return [path]


def sample(cfg: ForgeConfig, rows: int) -> pd.DataFrame:
    """The first rows of the source (for schema inference); a CSV file is read here, without a Ray task."""
    if source_format(cfg) == "csv":
        fs, path = filesystem(cfg)
        return head(fs or pafs.LocalFileSystem(), source_files(fs, path)[0], rows).to_pandas()
    return read_dataset(cfg).limit(rows).to_pandas()


def local_csv_tables(cfg: ForgeConfig, keep_malformed: bool = False) -> Iterator[pa.Table] | None:
    """The source's tables read in this process, range by range, for CSV of at most `data.in_process_bytes`;
    else None.

    Below that size starting Ray tasks costs more than the work (issue 16: 500k rows paid seconds of fixed cost).
    With keep_malformed, malformed lines come as blocks of csv_ranges.MALFORMED records, as from the Ray read.
    """
    source = _in_process_source(cfg, keep_malformed)
    return None if source is None else source.read_here()


def reads_in_process(cfg: ForgeConfig) -> bool:
    """Whether the source is read in this process (a CSV of at most `data.in_process_bytes`): no Ray is needed
    to validate it, and `forge validate` starts none (a Ray start took 4-6 s beside 1.5 s of work at 500k rows)."""
    return _in_process_source(cfg, False) is not None


def _in_process_source(cfg: ForgeConfig, keep_malformed: bool) -> CSVRanges | None:
    if source_format(cfg) != "csv" or cfg.data.in_process_bytes <= 0:
        return None
    fs, path = filesystem(cfg)
    source = CSVRanges(source_files(fs, path), fs or pafs.LocalFileSystem(), keep_malformed=keep_malformed, cpus=1)
    return None if source.estimate_inmemory_data_size() > cfg.data.in_process_bytes else source


def _check_parquet(files: list[str], fs: pafs.FileSystem) -> None:
    """Every file's footer, read before any task starts: a truncated or foreign file is a clear error here,
    not a crashed read task later."""
    import pyarrow.parquet as pq

    for file in files:
        try:
            pq.read_metadata(file, filesystem=fs)
        except (pa.ArrowInvalid, OSError) as e:
            raise SourceError(f"data.source: {file} is not a readable Parquet file (truncated or not Parquet): "
                              f"{e}") from None


def read_dataset(cfg: ForgeConfig, schema: dict[str, ColumnSchema] | None = None,
                 keep_malformed: bool = False) -> ray.data.Dataset:
    """A streaming Ray Dataset of the source.

    CSV columns are read as strings so that a bad value quarantines its row
    instead of failing the whole read; types are applied by the validator.
    CSV files are read in byte ranges, many tasks to a file; with keep_malformed,
    malformed lines come as blocks of csv_ranges.MALFORMED records (else skipped).
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
    files = source_files(fs, path)
    paths: str | list[str] = files if fs is None and any(c in path for c in "*?[") else path
    kw: dict[str, Any] = {"filesystem": fs} if fs is not None else {}
    if fmt == "csv":
        cpus = int(ray.cluster_resources().get("CPU", 2))
        source = CSVRanges(files, fs or pafs.LocalFileSystem(), keep_malformed, cpus)
        # One block per range: letting Ray split them stops it fusing the read with the validation.
        return ray.data.read_datasource(source, override_num_blocks=source.num_ranges())
    if fmt == "parquet":
        _check_parquet(files, fs or pafs.LocalFileSystem())
        return ray.data.read_parquet(paths, **kw)
    return ray.data.read_json(paths, lines=True, **kw)
