"""The public Python API: the design's key classes over Forge's stages, for notebooks and scripts.

    from forge import load_config, DataValidator, FeatureEngineer, ModelTrainer, ExperimentTracker, Pipeline

    cfg = load_config("examples/churn/forge.yaml")
    result = DataValidator(cfg).validate()            # ValidationResult: version, counts, report
    frame = result.dataset.read_frame()
    features = FeatureEngineer(cfg, result.schema).fit(frame)
    X = features.transform(frame)                     # the same numpy transform the Serve replicas apply

Each class is a thin, typed entry over one stage (`forge/data`, `features`, `training`, `registry`,
`monitoring`, `pipelines`); the CLI, `jobs/` and the Serve app call the same stages. Ray is started on first
use (or joined through RAY_ADDRESS), never at import.
"""

from __future__ import annotations

import pickle  # nosec B403: a FeatureEngineer reads back only what its own save() wrote
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge.config import ColumnSchema, ForgeConfig, load_config
from forge.errors import UsageError
from forge.storage import as_location

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import ray.data
    from ray.tune import ResultGrid

    from forge.data.ingest import ValidationResult
    from forge.data.profile import InferredSchema
    from forge.monitoring.monitor import DriftResult
    from forge.training.packaging import ForgeModel
    from forge.training.trainer import TrainingData


def _config(cfg: ForgeConfig | str | Path) -> ForgeConfig:
    return cfg if isinstance(cfg, ForgeConfig) else load_config(cfg)


def _ray() -> None:
    from forge._runtime import init_ray

    init_ray()


class DataLoader:
    """Reads the configured source (CSV, Parquet, JSON lines, SQL; a path, a glob or s3:// / gs://)."""

    def __init__(self, cfg: ForgeConfig | str | Path):
        self.cfg = _config(cfg)

    def read(self) -> ray.data.Dataset:
        """The source as a streaming Ray Dataset (CSV columns as text: the validator types them)."""
        from forge.data.loading import read_dataset

        _ray()
        return read_dataset(self.cfg)

    def head(self, rows: int = 1000) -> pd.DataFrame:
        """The first rows, as pandas."""
        from forge.data.loading import sample

        return sample(self.cfg, rows)


class DataValidator:
    """Schema inference (the observed profile), row checks with quarantine, dataset checks and versioning."""

    def __init__(self, cfg: ForgeConfig | str | Path):
        self.cfg = _config(cfg)

    def infer_schema(self) -> InferredSchema:
        """Every row of the source read once: types, nullability, observed categories; no hard rules."""
        from forge.data.profile import infer_source_schema

        return infer_source_schema(self.cfg)

    def validate(self, progress: Callable[[int | None], None] | None = None) -> ValidationResult:
        """Validate, quarantine and version the source.

        Raises:
            DataCheckError: a dataset-level check failed (too much quarantined, too few rows, ...).
        """
        from forge.data.ingest import validate_dataset

        _ray()
        return validate_dataset(self.cfg, progress=progress)


class FeatureEngineer:
    """The feature transform fitted once and applied everywhere: training, batch inference and serving.

    Args:
        schema: column schemas (a ValidationResult's `schema`, or `data.schema`); the config's `features:`
            section picks and overrides the columns.
    """

    def __init__(self, cfg: ForgeConfig | str | Path, schema: dict[str, ColumnSchema] | None = None,
                 exclude: Sequence[str] = ()):
        from forge.features.engineering import FeatureTransform, infer_spec

        self.cfg = _config(cfg)
        schema = schema if schema is not None else self.cfg.data.schema_
        if schema is None:
            raise UsageError("FeatureEngineer needs a schema: pass ValidationResult.schema or declare data.schema")
        self.spec = infer_spec(self.cfg, schema, list(exclude))
        self.transform_ = FeatureTransform(self.spec)

    def fit(self, data: pd.DataFrame | ray.data.Dataset) -> FeatureEngineer:
        """Fit on training rows: one pass, in process for a frame, on Ray Data for a Dataset."""
        import ray.data

        if isinstance(data, ray.data.Dataset):
            _ray()
        self.transform_.fit(data)
        return self

    def transform(self, data: pd.DataFrame | ray.data.Dataset) -> np.ndarray | ray.data.Dataset:
        """pandas rows -> a float matrix; a Ray Dataset -> a Dataset of {"features"} batches."""
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return self.transform_.transform_batch(data)
        return self.transform_.transform(data)

    @property
    def feature_names(self) -> list[str]:
        return self.transform_.feature_names

    def save(self, path: str | Path) -> Path:
        """The fitted transform as a pickle, and beside it (`<path>.sig`) its signature by the project's
        model-signing key: `load` unpickles nothing that key did not sign."""
        from forge.signing import digest, signer
        from forge.workspace import Workspace

        path = Path(path)
        data = pickle.dumps(self.transform_)
        path.write_bytes(data)
        key = signer(Workspace.from_config(self.cfg).keys())
        Path(f"{path}.sig").write_text(key.sign(f"{self.cfg.name}:features", digest(data)))
        return path

    @classmethod
    def load(cls, cfg: ForgeConfig | str | Path, path: str | Path) -> FeatureEngineer:
        """A FeatureEngineer from a file `save` wrote, unpickled only once its signature verifies.

        Raises:
            ModelLoadError: no signature beside the file, or one that does not verify (SignatureError).
        """
        from forge.signing import digest, verifier
        from forge.workspace import Workspace

        self = cls.__new__(cls)
        self.cfg = _config(cfg)
        data, sig = Path(path).read_bytes(), Path(f"{path}.sig")
        verifier(Workspace.from_config(self.cfg).keys()).verify(
            f"{self.cfg.name}:features", digest(data), sig.read_text().strip() if sig.exists() else None, str(path))
        self.transform_ = pickle.loads(data)  # nosec B301: its signature verified just above
        self.spec = self.transform_.spec
        return self


class ModelTrainer:
    """Splits, fits the features and searches the model families with Ray Tune (and Ray Train for the MLP)."""

    def __init__(self, cfg: ForgeConfig | str | Path):
        self.cfg = _config(cfg)

    def prepare(self, frame: pd.DataFrame, schema: dict[str, ColumnSchema]) -> TrainingData:
        from forge.training.trainer import prepare

        _ray()
        return prepare(self.cfg, frame, schema)

    def search(self, data: TrainingData, storage: str | Path | None = None) -> ResultGrid:
        """The Tune search; returns Tune's ResultGrid (storage: the workspace's tune/ folder by default)."""
        from forge.training.trainer import search
        from forge.workspace import Workspace

        _ray()
        where = as_location(storage) if storage is not None else Workspace.from_config(self.cfg).tune()
        return search(self.cfg, data, where)

    def fit_best(self, data: TrainingData, grid: ResultGrid) -> tuple[str, dict, Any]:
        """(family, parameters, fitted estimator) of the best trial."""
        from forge.training.evaluation import mode
        from forge.training.trainer import fit_best

        best = grid.get_best_result(metric="val_metric", mode=mode(data.metric), filter_nan_and_inf=True)
        return fit_best(data, best, self.cfg.training.seed, fs=best.filesystem)


class ExperimentTracker:
    """MLflow for one project: its experiment, and its registry through one `Registry` facade (the client, alias
    resolution, model URIs, hash-checked model loads, drift references, serving traffic)."""

    def __init__(self, cfg: ForgeConfig | str | Path):
        from forge.registry.client import Registry
        from forge.training import tracking

        self.cfg = _config(cfg)
        self.experiment_id = tracking.setup(self.cfg)
        self.registry = Registry.of(self.cfg)

    def version(self, alias: str = "champion") -> str | None:
        """The version an alias points at (None when it points nowhere)."""
        return self.registry.version(alias)

    def model_uri(self, ref: str = "champion") -> str:
        """`models:/<name>@<alias>` for an alias, `models:/<name>/<version>` for a version number."""
        return self.registry.model_uri(ref)

    def load_model(self, ref: str = "champion") -> ForgeModel:
        """The registered model (feature transform + estimator), once its SHA-256 matches the registered one."""
        return self.registry.load(ref)

    def versions(self) -> list[dict]:
        return self.registry.versions()

    def lineage(self, ref: str = "champion") -> dict:
        return self.registry.lineage(ref)


class Pipeline:
    """validate -> features -> search -> evaluate -> register -> gate, as `forge run`."""

    def __init__(self, cfg: ForgeConfig | str | Path):
        self.cfg = _config(cfg)

    def run(self, say: Callable[[str], None] = print) -> dict:
        """The `forge run --json` object (data version, counts, model version, metric, baseline, gate)."""
        from forge.pipelines.pipeline import run

        _ray()
        return run(self.cfg, say=say)


class DriftMonitor:
    """Drift of a data set or of the prediction log against the champion's training reference."""

    def __init__(self, cfg: ForgeConfig | str | Path):
        self.cfg = _config(cfg)

    def check(self, current: str | None = None, last: int | None = None, html: str | None = None) -> DriftResult:
        """Drift per feature and the dataset verdict (`.to_dict()` is the `forge drift --json` object)."""
        from forge.monitoring.monitor import run_drift

        _ray()
        return run_drift(self.cfg, current or "log", html, last=last)


class Forge:
    """One project: its config, pipeline, tracker, drift monitor, and its Serve app."""

    def __init__(self, cfg: ForgeConfig | str | Path = "forge.yaml"):
        self.cfg = _config(cfg)

    def run(self) -> dict:
        return Pipeline(self.cfg).run()

    def serve(self, port: int | None = None) -> str:
        """Deploy the app on the local (or RAY_ADDRESS) cluster; returns its base URL. Stop: `serve.delete`."""
        from forge.serving.deploy import deploy_app

        return deploy_app(self.cfg, port, connect=_ray)

    @property
    def tracker(self) -> ExperimentTracker:
        return ExperimentTracker(self.cfg)

    @property
    def drift(self) -> DriftMonitor:
        return DriftMonitor(self.cfg)
