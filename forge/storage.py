"""Location: one path type for every piece of Forge's state, a local folder or an object store (pyarrow.fs).

A Location reads and writes like a `pathlib.Path` (`/`, `read_text`, `write_text`,
`exists`, `glob`, `unlink`), so the modules that own state do not care where it
lives. Writes are whole-object: a local write goes to a temporary name and is
renamed, an object-store write is one PUT; either way a reader never sees half
a file. Object stores have no append and no rename of folders, so Forge never
needs them: a dataset version becomes visible when its manifest is written, last.

S3 credentials and region come from the usual AWS environment variables;
`object_store.endpoint_url` (or `AWS_ENDPOINT_URL`) points at MinIO or moto.
"""

from __future__ import annotations

import fnmatch
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from forge.errors import UsageError

SCHEMES = ("s3", "gs", "file")


class StorageError(UsageError):
    """A location that cannot be used: unknown scheme, unreachable endpoint, missing bucket or credentials."""


def filesystem_for(uri: str, endpoint_url: str | None = None, region: str | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of a local path or URI, and the path inside it."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    scheme, rest = uri.split("://", 1)
    if scheme not in SCHEMES:
        raise StorageError(f"workspace: unknown URI scheme {scheme!r} in {uri!r} (use a path, s3://, gs:// or file://)")
    if scheme == "file":
        return pafs.LocalFileSystem(), str(Path(rest).resolve())
    if scheme == "s3":
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        kw: dict = {"region": region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                    or "us-east-1"}
        if endpoint:
            scheme_, _, host = endpoint.partition("://")
            kw.update(endpoint_override=host or scheme_, scheme=scheme_ if host else "https")
        return pafs.S3FileSystem(**kw), rest.rstrip("/")
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path.rstrip("/")


@dataclass(frozen=True)
class Location:
    """A file or folder on a pyarrow filesystem; `uri` is what Ray, pandas and MLflow are given."""

    fs: pafs.FileSystem
    path: str
    scheme: str = ""  # "" for the local disk
    endpoint: str | None = None  # the object store's endpoint override, for error messages

    @classmethod
    def of(cls, uri: str, endpoint_url: str | None = None, region: str | None = None) -> Location:
        fs, path = filesystem_for(uri, endpoint_url, region)
        scheme = "" if isinstance(fs, pafs.LocalFileSystem) else uri.split("://", 1)[0]
        endpoint = None if not scheme else endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        return cls(fs, path, scheme, endpoint)

    @property
    def is_local(self) -> bool:
        return not self.scheme

    @property
    def uri(self) -> str:
        return self.path if self.is_local else f"{self.scheme}://{self.path}"

    def __str__(self) -> str:
        return self.uri

    def __fspath__(self) -> str:
        if not self.is_local:
            raise TypeError(f"{self.uri} is not on the local disk")
        return self.path

    def __truediv__(self, part: str) -> Location:
        return Location(self.fs, f"{self.path.rstrip('/')}/{part}", self.scheme, self.endpoint)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name

    @property
    def parent(self) -> Location:
        return Location(self.fs, self.path.rstrip("/").rsplit("/", 1)[0], self.scheme, self.endpoint)

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.fs.get_file_info(self.path).type == pafs.FileType.Directory

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> Location:
        if self.is_local:
            Path(self.path).mkdir(parents=parents, exist_ok=exist_ok)
        return self  # object stores have no folders: a prefix exists once an object is under it

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def write_bytes(self, data: bytes) -> None:
        if self.is_local:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
            Path(tmp).write_bytes(data)
            os.replace(tmp, self.path)
            return
        with self.fs.open_output_stream(self.path) as f:
            f.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def upload(self, local: str | Path) -> None:
        """Copy a local file here (a rename on the local disk when both are local)."""
        if self.is_local:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            os.replace(local, self.path)
            return
        pafs.copy_files(str(local), self.path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)

    def download(self, local: str | Path) -> Path:
        pafs.copy_files(self.path, str(local), source_filesystem=self.fs, destination_filesystem=pafs.LocalFileSystem())
        return Path(local)

    def unlink(self, missing_ok: bool = True) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmtree(self) -> None:
        if self.exists():
            self.fs.delete_dir(self.path)

    def glob(self, pattern: str) -> list[Location]:
        """Files directly in this folder whose names match pattern, sorted by name."""
        if not self.is_dir():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        names = sorted(i.base_name for i in infos if i.type == pafs.FileType.File)
        return [self / n for n in names if fnmatch.fnmatch(n, pattern)]

    def read_table(self, **kw) -> pa.Table:
        return pq.read_table(self.path, filesystem=self.fs, **kw)

    def write_table(self, table: pa.Table, **kw) -> None:
        if self.is_local:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
            pq.write_table(table, tmp, **kw)
            os.replace(tmp, self.path)
            return
        pq.write_table(table, self.path, filesystem=self.fs, **kw)

    def check(self, setting: str) -> None:
        """Fail early, naming the setting and the endpoint, when this location cannot be listed."""
        try:
            self.fs.get_file_info(self.path)
            if not self.is_local:
                bucket = self.path.split("/", 1)[0]
                if self.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                    raise StorageError(f"{setting}: bucket {bucket!r} does not exist ({self.uri})")
        except StorageError:
            raise
        except OSError as e:
            raise StorageError(f"{setting}: cannot reach {self.uri} (endpoint {self.endpoint or 'default'}): {e}") from e


def as_location(where: Location | str | Path) -> Location:
    """A Location from a Location, a local path or a URI (object-store settings from the environment)."""
    return where if isinstance(where, Location) else Location.of(str(where))


def ray_storage(where: Location) -> dict:
    """Ray Train / Tune RunConfig arguments that put results and checkpoints at `where`."""
    if where.is_local:
        return {"storage_path": where.path}
    return {"storage_path": where.path, "storage_filesystem": where.fs}
