"""Where things live under the workspace: `.forge/` beside the config by default, or an object-store URI.

Every piece of Forge's state is a `Location` under the workspace root, so the
same forge.yaml runs on a laptop (a folder), in a Ray job or a pod (`s3://...`).
With a remote workspace nothing is written to local disk but the prediction
log's write-ahead segments (`local_dir`, a node-local folder) and temporary
files that are uploaded and removed.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from forge.config import ForgeConfig
from forge.errors import UsageError
from forge.storage import Location


@dataclass(frozen=True)
class Workspace:
    root: Location
    name: str = "forge"

    @classmethod
    def from_config(cls, cfg: ForgeConfig) -> Workspace:
        uri = cfg.resolve(cfg.workspace) if cfg.workspace else str(cfg.base_dir / ".forge")
        store = cfg.object_store
        return cls(Location.of(uri, store.endpoint_url, store.region), cfg.name)

    @property
    def is_local(self) -> bool:
        return self.root.is_local

    def _dir(self, *parts: str) -> Location:
        loc = self.root
        for p in parts:
            loc = loc / p
        return loc.mkdir()

    @property
    def tracking_uri(self) -> str:
        if not self.is_local:
            raise UsageError(f"tracking_uri: a workspace on {self.root.uri} needs an MLflow server "
                             "(tracking_uri: http://...); SQLite cannot live in an object store")
        self.root.mkdir()
        return f"sqlite:///{self.root.path}/mlflow.db"

    @property
    def artifact_root(self) -> Location:
        return self._dir("mlartifacts")

    def datasets(self, name: str) -> Location:
        return self._dir("datasets", name)

    def dataset(self, name: str, version: str) -> Location:
        return self.root / "datasets" / name / version

    def quarantine(self, name: str) -> Location:
        return self._dir("quarantine", name)

    def reports(self) -> Location:
        return self._dir("reports")

    def predictions(self, model: str) -> Location:
        return self._dir("predictions", model)

    def features(self) -> Location:
        return self._dir("features")

    def labels(self, model: str) -> Location:
        return self._dir("labels", model)

    def tune(self) -> Location:
        return self._dir("tune")

    def local_dir(self, *parts: str) -> Path:
        """A folder on this node's disk: under the workspace when it is local, else under the temp folder
        (FORGE_LOCAL_DIR overrides it: a node-local volume in a pod)."""
        if self.is_local:
            base = Path(self.root.path)
        else:
            base = Path(os.environ.get("FORGE_LOCAL_DIR") or Path(tempfile.gettempdir()) / "forge" / self.name)
        path = base.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def prediction_folder(self, cfg: ForgeConfig) -> Location:
        """Where the prediction log's Parquet parts are: monitoring.prediction_log.path, else predictions/<name>.
        Every reader (drift, labels, A/B, retraining) and the writer go through here."""
        custom = cfg.monitoring.prediction_log.path
        return Location.of(cfg.resolve(custom), cfg.object_store.endpoint_url, cfg.object_store.region) \
            if custom else self.predictions(cfg.name)

    def prediction_log(self, cfg: ForgeConfig) -> tuple[Location, Path]:
        """(where the prediction log's Parquet parts go, this node's folder for its write-ahead segments).

        Object stores have no append and no lock: with a remote log the segments stay on this node's disk.
        """
        folder = self.prediction_folder(cfg)
        return folder, Path(folder.path) if folder.is_local else self.local_dir("wal", cfg.name)

    def keys(self) -> Path:
        """This node's folder of the model-signing key pair `forge` makes on first use (FORGE_SIGNING_KEY_FILE and
        FORGE_VERIFY_KEY_FILE, as Kubernetes mounts them from Secrets, take precedence: forge/signing.py)."""
        return self.local_dir("keys")

    def staging(self) -> Path:
        """Scratch space on this node for files being built before they are uploaded."""
        return self.local_dir("staging")


def tracking_uri(cfg: ForgeConfig) -> str:
    return cfg.tracking_uri or Workspace.from_config(cfg).tracking_uri
