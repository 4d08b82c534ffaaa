"""`Registry`: the one way Forge reaches a project's MLflow registry.

It owns the client (bound to the project's tracking URI, whatever the process-wide one is), resolves aliases,
builds `models:/` URIs, loads models after checking their SHA-256, and reads the drift reference of a run.
"""

from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forge.config import ForgeConfig, TrafficConfig
from forge.errors import ModelLoadError, NotFoundError
from forge.registry import registry as _reg
from forge.training.packaging import MODEL_FILE, file_sha256

TRAFFIC_TAG = "forge.traffic"
HASH_TAG = "forge.sha256"
@contextlib.contextmanager
def _registry_uri(uri: str):
    """mlflow.register_model has no client argument: point the process at this registry for the call."""
    import mlflow

    saved = mlflow.get_registry_uri()
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_registry_uri(saved)


@functools.lru_cache(maxsize=8)
def _download(tracking: str, artifact_uri: str) -> str:
    import mlflow

    return mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, tracking_uri=tracking)


@dataclass(frozen=True)
class ModelRef:
    """One registered version, small enough to ship to Ray workers; `load()` loads it once per process."""

    name: str
    tracking_uri: str
    version: str

    def load(self):
        return _load_once(self)


@functools.lru_cache(maxsize=4)
def _load_once(ref: ModelRef):
    return Registry(ref.name, ref.tracking_uri).load(ref.version)


class Registry:
    """A project's registered model: versions, aliases, models, references and the serving traffic."""

    def __init__(self, name: str, tracking_uri: str, client=None):
        from mlflow import MlflowClient

        self.name = name
        self.tracking_uri = tracking_uri
        self.client = client or MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def of(cls, cfg: ForgeConfig) -> Registry:
        """The registry of `cfg`'s project (tracking_uri, or the workspace's SQLite)."""
        from forge.workspace import tracking_uri

        return cls(cfg.name, tracking_uri(cfg))

    # ---- versions and aliases ----------------------------------------------------------------
    def version(self, ref: str = _reg.CHAMPION) -> str | None:
        """The version number behind an alias or a version number; None when the alias points nowhere."""
        if str(ref).isdigit():
            return str(ref)
        return _reg.alias_version(self.client, self.name, ref)

    def require(self, ref: str = _reg.CHAMPION) -> str:
        """As `version`, but a missing alias is an error that says what to run."""
        version = self.version(ref)
        if version is None:
            raise NotFoundError(f"model {self.name!r} has no @{ref} yet: run `forge run` first")
        return version

    def model_uri(self, ref: str = _reg.CHAMPION) -> str:
        """`models:/<name>/<version>` for a version number, `models:/<name>@<alias>` for an alias."""
        return f"models:/{self.name}/{ref}" if str(ref).isdigit() else f"models:/{self.name}@{ref}"

    def ref(self, ref: str = _reg.CHAMPION) -> ModelRef:
        """The version behind `ref`, pinned, for workers to load."""
        return ModelRef(self.name, self.tracking_uri, self.require(ref))

    def model_version(self, version: str):
        return self.client.get_model_version(self.name, str(version))

    def run(self, run_id: str):
        return self.client.get_run(run_id)

    def versions(self) -> list[dict]:
        return _reg.list_versions(self.client, self.name)

    def lineage(self, ref: str = _reg.CHAMPION) -> dict:
        return _reg.lineage(self.client, self.name, self.require(ref))

    def promote(self, version: str) -> str | None:
        """`version` becomes @champion; the old champion becomes @previous (returned)."""
        return _reg.promote(self.client, self.name, str(version))

    def mark_challenger(self, version: str) -> None:
        _reg.mark_challenger(self.client, self.name, str(version))

    # ---- models --------------------------------------------------------------------------------
    def register(self, model, example: pd.DataFrame, tags: dict[str, str], signature=None) -> str:
        """Log `model` in the active MLflow run and register it with `tags` and its SHA-256; returns the version."""
        import mlflow

        from forge.training.packaging import log_model

        info, digest = log_model(model, example, signature=signature)
        with _registry_uri(self.tracking_uri):
            mv = mlflow.register_model(info.model_uri, self.name, tags={**tags, HASH_TAG: digest})
        return str(mv.version)

    def load(self, ref: str = _reg.CHAMPION):
        """The ForgeModel of a version or alias, unpickled only once its bytes match the registered SHA-256.

        Raises:
            ModelLoadError: no hash recorded, a mismatch, or an artifact that cannot be read or unpickled.
        """
        import cloudpickle

        version = self.require(ref)
        mv = self.model_version(version)
        expected = mv.tags.get(HASH_TAG)
        if not expected:
            raise ModelLoadError(f"{self.name} v{version}: no {HASH_TAG} tag; Forge loads only models it registered "
                                 "with a hash (re-register it with `forge train`)")
        try:
            source = self.client.get_model_version_download_uri(self.name, version)
            path = Path(_download(self.tracking_uri, f"{source.rstrip('/')}/artifacts/{MODEL_FILE}"))
        except Exception as e:  # an artifact store that lost the file or cannot be reached
            raise ModelLoadError(f"{self.name} v{version}: cannot download the model artifact: {e}") from e
        actual = file_sha256(path)
        if actual != expected:
            raise ModelLoadError(f"{self.name} v{version}: artifact SHA-256 {actual[:12]}... does not match the "
                                 f"registered {expected[:12]}...: refusing to unpickle it")
        try:
            return cloudpickle.loads(path.read_bytes())  # nosec B301: bytes checked against the registered hash
        except Exception as e:
            raise ModelLoadError(f"{self.name} v{version}: the artifact does not unpickle: {e}") from e

    def reference(self, run_id: str) -> tuple[pd.DataFrame, dict]:
        """(reference sample, feature statistics) that the training run logged for drift."""
        folder = Path(_download(self.tracking_uri, f"runs:/{run_id}/features"))
        return pd.read_parquet(folder / "reference.parquet"), json.loads((folder / "feature_stats.json").read_text())

    def reference_bins(self, run_id: str):
        """The training data binned for fast drift (forge/monitoring/bins.py); None for runs logged before it."""
        from forge.features.bins import BINS_FILE, Bins

        path = Path(_download(self.tracking_uri, f"runs:/{run_id}/features")) / BINS_FILE
        return Bins.from_json(path.read_text()) if path.exists() else None

    # ---- serving traffic -----------------------------------------------------------------------
    def traffic(self) -> TrafficConfig | None:
        """The variants `forge ab set` put on the running app (None: forge.yaml's serving.traffic)."""
        from mlflow.exceptions import MlflowException

        try:
            raw = self.client.get_registered_model(self.name).tags.get(TRAFFIC_TAG)
        except MlflowException as e:
            if not _reg.missing(e):
                raise
            return None  # nothing registered yet (an app deployed before the first training)
        return TrafficConfig.model_validate_json(raw) if raw else None

    def set_traffic(self, traffic: TrafficConfig | None) -> None:
        """Change the variants of every running replica (on their next poll); None goes back to forge.yaml."""
        if traffic is None:
            self.client.delete_registered_model_tag(self.name, TRAFFIC_TAG)
            return
        for ref in [v.model for v in traffic.variants] + ([traffic.shadow] if traffic.shadow else []):
            self.require(ref)  # fail here, not in the replicas, on a bad alias
        self.client.set_registered_model_tag(self.name, TRAFFIC_TAG, traffic.model_dump_json())
