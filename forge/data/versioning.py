"""DatasetVersion: content-derived versions, Parquet snapshots and manifests.

The version is a hash of the schema and the sorted per-row hashes of the valid
rows: the same rows give the same version whatever the file is called and in
whatever order the rows come (row order does not count; duplicates do).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forge.errors import NotFoundError
from forge.storage import Location
from forge.workspace import Workspace

SNAPSHOT = "data.parquet"
MANIFEST = "manifest.json"


def content_version(schema_json: str, sorted_row_hashes: np.ndarray) -> str:
    h = hashlib.sha256(schema_json.encode())
    h.update(np.ascontiguousarray(sorted_row_hashes, dtype="<u8").tobytes())
    return h.hexdigest()[:16]


@dataclass
class DatasetVersion:
    name: str
    version: str
    path: Location

    @property
    def snapshot(self) -> Location:
        return self.path / SNAPSHOT

    @property
    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())

    def read_frame(self):
        """The valid rows of this version as a pandas frame."""
        return self.snapshot.read_table().to_pandas()

    @property
    def digest(self) -> str:
        return self.version


def latest_version(ws: Workspace, name: str) -> DatasetVersion | None:
    pointer = ws.datasets(name) / "LATEST"
    if not pointer.exists():
        return None
    version = pointer.read_text().strip()
    return DatasetVersion(name, version, ws.dataset(name, version))


def get_version(ws: Workspace, name: str, version: str | None = None) -> DatasetVersion:
    if version is None:
        dv = latest_version(ws, name)
        if dv is None:
            raise NotFoundError(f"no validated dataset for {name!r}; run `forge validate` first")
        return dv
    path = ws.dataset(name, version)
    if not (path / MANIFEST).exists():
        raise NotFoundError(f"dataset version {name}/{version} not found under {ws.root.uri}")
    return DatasetVersion(name, version, path)


def commit_version(
    ws: Workspace, name: str, version: str, staged_snapshot: Path, manifest: dict
) -> tuple[DatasetVersion, bool]:
    """Move a staged snapshot into place; an existing version is kept as it is.

    The manifest is written last: a version is visible (get_version, LATEST) only once complete, also on an
    object store where a crash can leave the snapshot without it.

    Returns:
        The version and whether it was created now.
    """
    dest = ws.dataset(name, version)
    parent = latest_version(ws, name)
    created = not (dest / MANIFEST).exists()
    if created:
        (dest / SNAPSHOT).upload(staged_snapshot)
        manifest = {
            **manifest,
            "name": name,
            "version": version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "parent": parent.version if parent and parent.version != version else None,
        }
        (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    (ws.datasets(name) / "LATEST").write_text(version)
    return DatasetVersion(name, version, dest), created
