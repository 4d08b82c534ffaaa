"""ExperimentTracker: MLflow set-up, parent runs, dataset inputs and code-version tags."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from forge.config import ForgeConfig
from forge.errors import ForgeError, UsageError
from forge.storage import Location
from forge.workspace import Workspace, tracking_uri


def setup(cfg: ForgeConfig) -> str:
    """Point MLflow at the configured server or the workspace's SQLite; returns the experiment id."""
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.get_experiment_by_name(cfg.name)
    if exp is not None:
        return exp.experiment_id
    return mlflow.create_experiment(cfg.name, artifact_location=_artifact_location(cfg, uri))


def _artifact_location(cfg: ForgeConfig, uri: str) -> str | None:
    """Artifacts live in the workspace (a folder or the object store); a server chooses its own (proxied to S3)."""
    if uri.startswith(("http://", "https://")):
        return None
    root = Workspace.from_config(cfg).artifact_root
    if root.is_local:
        return Path(root.path).as_uri()
    if cfg.object_store.endpoint_url:  # MLflow's S3 client reads its endpoint from here
        os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", cfg.object_store.endpoint_url)
    return root.uri


class TrackingUnreachable(ForgeError):
    """The MLflow tracking server does not answer; the message names the setting and the URL."""


class TrackingAuthError(UsageError):
    """The MLflow server refused Forge's credentials (its auth app is on): exit 2, naming what to set."""


def auth_refused(uri: str | None, status: int) -> TrackingAuthError:
    """The one message for a 401/403 from MLflow, whichever call met it."""
    uri = uri or "tracking_uri"
    if status == 403:
        return TrackingAuthError(f"tracking_uri: the MLflow server at {uri} refused the request (403): the user in "
                                 "MLFLOW_TRACKING_USERNAME lacks permission on this experiment or model")
    return TrackingAuthError(f"tracking_uri: the MLflow server at {uri} asks for credentials (401): set "
                             "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (on Kubernetes, Secret "
                             "forge-mlflow-client)")


def _credentials() -> tuple[dict, tuple[str, str] | None]:
    """The headers and basic auth MLflow's own client would send (it reads the same variables)."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return ({"Authorization": f"Bearer {token}"} if token else {}), ((user, password) if user and password else None)


def check_tracking(cfg: ForgeConfig, timeout: float = 5.0) -> None:
    """For an MLflow server: a health request and one authenticated call, so a wrong or dead tracking_uri, or
    missing credentials, fail at once rather than after MLflow's minutes of retries."""
    uri = cfg.tracking_uri
    if not uri or not uri.startswith(("http://", "https://")):
        return
    import httpx

    base = uri.rstrip("/")
    try:
        r = httpx.get(f"{base}/health", timeout=timeout)
        if r.status_code == 200:
            headers, auth = _credentials()
            r = httpx.get(f"{base}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, headers=headers,
                          auth=auth, timeout=timeout)
    except httpx.HTTPError as e:
        raise TrackingUnreachable(f"tracking_uri: cannot reach the MLflow server at {uri}: {e}") from e
    if r.status_code == 401 or (r.status_code == 403 and r.url.path.endswith("/search")):
        raise auth_refused(uri, r.status_code)
    if r.status_code != 200:
        hint = " (the server's --allowed-hosts must list this host)" if r.status_code == 403 else ""
        raise TrackingUnreachable(f"tracking_uri: the MLflow server at {uri} answered {r.status_code}{hint}")


def client(cfg: ForgeConfig):
    """An MlflowClient bound to this project's tracking and registry URIs, whatever the process-wide ones are."""
    from mlflow import MlflowClient

    uri = tracking_uri(cfg)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def git_sha(cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def code_tags(cfg: ForgeConfig) -> dict[str, str]:
    import forge

    tags = {"forge.version": forge.__version__, "forge.config": str(cfg.config_path)}
    sha = git_sha(cfg.base_dir) or git_sha(Path(forge.__file__).parent)
    if sha:
        tags["mlflow.source.git.commit"] = sha
    return tags


def log_dataset_input(df: pd.DataFrame, source: str, target: str, name: str, digest: str, context: str) -> None:
    """Record the data version as an MLflow dataset input (digest = the Forge data version)."""
    ds = mlflow.data.from_pandas(df, source=source, targets=target, name=name, digest=digest)
    mlflow.log_input(ds, context=context)


def log_artifact(location: Location | str, artifact_path: str) -> None:
    """Log a workspace file (local or on an object store) as an artifact of the active run."""
    loc = location if isinstance(location, Location) else Location.of(str(location))
    if loc.is_local:
        mlflow.log_artifact(loc.path, artifact_path)
        return
    with tempfile.TemporaryDirectory() as d:
        mlflow.log_artifact(str(loc.download(Path(d) / loc.name)), artifact_path)
