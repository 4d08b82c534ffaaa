"""One answer to "what format is this file?": by suffix, for sources, current data, batch input and labels."""

from __future__ import annotations

from pathlib import Path

SUFFIX_FORMAT = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json", ".jsonl": "json",
                 ".ndjson": "json", ".csv.gz": "csv", ".csv.bz2": "csv", ".csv.zst": "csv"}


def format_of(path: str, default: str | None = "csv") -> str | None:
    """csv, parquet or json by suffix (a glob's or a folder's files count); a suffix-less folder or remote prefix
    is Parquet (what Forge and Ray Data write); anything else is `default`."""
    stripped = path.rstrip("/*")
    name = stripped.rsplit("/", 1)[-1].lower()
    for suffix, fmt in sorted(SUFFIX_FORMAT.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix) or path.lower().endswith("*" + suffix):
            return fmt
    if "://" not in path and Path(stripped).is_dir():
        inside = next((p.name.lower() for p in sorted(Path(stripped).iterdir()) if p.is_file()
                       and not p.name.startswith((".", "_"))), "")
        return format_of(inside, "parquet") if inside else "parquet"
    if "." not in name:
        return "parquet"
    return default
