"""The drift reference of a model: training feature statistics and sample, from its MLflow run."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd


@functools.lru_cache(maxsize=8)
def _download(tracking: str, run_id: str) -> str:
    import mlflow

    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="features", tracking_uri=tracking)


def load_reference(client, run_id: str) -> tuple[pd.DataFrame, dict]:
    """(reference sample, feature statistics) logged by the training run."""
    import mlflow

    folder = Path(_download(mlflow.get_tracking_uri(), run_id))
    return pd.read_parquet(folder / "reference.parquet"), json.loads((folder / "feature_stats.json").read_text())
