"""`Registry`: the one way Forge reaches a project's MLflow registry.

It owns the client (bound to the project's tracking URI, whatever the process-wide one is), resolves aliases,
builds `models:/` URIs, registers models signed by the training side's key, loads them only once the bytes it
unpickles match the registered SHA-256 and their signature verifies (forge/signing.py), and reads the drift
reference of a run.
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
from forge.signing import digest, signer, verifier
from forge.training.packaging import MODEL_FILE

TRAFFIC_TAG = "forge.traffic"
HASH_TAG = "forge.sha256"
SIGNATURE_TAG, KEY_TAG = "forge.signature", "forge.signing_key"
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
    keys: str | None = None  # the model-signing keys' folder on the node that made the ref

    def load(self):
        return _load_once(self)


@functools.lru_cache(maxsize=4)
def _load_once(ref: ModelRef):
    return Registry(ref.name, ref.tracking_uri, keys=Path(ref.keys) if ref.keys else None).load(ref.version)


class Registry:
    """A project's registered model: versions, aliases, models, references and the serving traffic."""

    def __init__(self, name: str, tracking_uri: str, client=None, keys: Path | None = None):
        """`keys`: this node's folder of the model-signing key pair (forge/signing.py; environment variables win)."""
        from mlflow import MlflowClient

        self.name = name
        self.tracking_uri = tracking_uri
        self.keys = keys
        self.client = client or MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def of(cls, cfg: ForgeConfig) -> Registry:
        """The registry of `cfg`'s project (tracking_uri, or the workspace's SQLite)."""
        from forge.workspace import Workspace, tracking_uri

        return cls(cfg.name, tracking_uri(cfg), keys=Workspace.from_config(cfg).keys())

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
        return ModelRef(self.name, self.tracking_uri, self.require(ref), str(self.keys) if self.keys else None)

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
        """Log `model` in the active MLflow run, signed with the training side's key, and register it with `tags`,
        its SHA-256 and the signature; returns the version."""
        import mlflow

        from forge.training.packaging import log_model

        key = signer(self.keys)
        info, sha256, signed = log_model(model, example, self.name, key, signature=signature)
        with _registry_uri(self.tracking_uri):
            mv = mlflow.register_model(info.model_uri, self.name, tags={
                **tags, HASH_TAG: sha256, SIGNATURE_TAG: signed, KEY_TAG: key.verifier.key_id})
        return str(mv.version)

    def load(self, ref: str = _reg.CHAMPION):
        """The ForgeModel of a version or alias, unpickled only once the bytes read match the registered SHA-256 and
        the training side's signature over them verifies with this node's public key.

        Raises:
            ModelLoadError: no hash recorded, a mismatch, an artifact that cannot be read or unpickled, or
                (SignatureError) no signature, another key's, or no public key to check it with.
        """
        import cloudpickle

        version = self.require(ref)
        mv = self.model_version(version)
        expected, what = mv.tags.get(HASH_TAG), f"{self.name} v{version}"
        if not expected:
            raise ModelLoadError(f"{what}: no {HASH_TAG} tag; Forge loads only models it registered "
                                 "with a hash (re-register it with `forge train`)")
        trusted = verifier(self.keys)  # no public key: nothing loads, before any download
        try:
            source = self.client.get_model_version_download_uri(self.name, version)
            data = Path(_download(self.tracking_uri, f"{source.rstrip('/')}/artifacts/{MODEL_FILE}")).read_bytes()
        except Exception as e:  # an artifact store that lost the file or cannot be reached
            raise ModelLoadError(f"{what}: cannot download the model artifact: {e}") from e
        actual = digest(data)  # of the very bytes unpickled below, not of a file read again
        if actual != expected:
            raise ModelLoadError(f"{what}: artifact SHA-256 {actual[:12]}... does not match the "
                                 f"registered {expected[:12]}...: refusing to unpickle it")
        trusted.verify(self.name, actual, mv.tags.get(SIGNATURE_TAG), what)
        try:
            return cloudpickle.loads(data)  # nosec B301: its hash matched and its signature verified just above
        except Exception as e:
            raise ModelLoadError(f"{what}: the artifact does not unpickle: {e}") from e

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
