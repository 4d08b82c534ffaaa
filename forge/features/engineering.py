"""FeatureEngineer: fitted on the training split with Ray Data, applied identically offline and online.

The fitted `FeatureTransform` is one object whose `transform_batch(pandas)` is
the only code path: Ray Data calls it per batch, the served model per request.
Imputation, scaling and one-hot come from `ray.data.preprocessors` (a Chain);
derived columns are pandas expressions, since Ray has no expression
preprocessor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import ray
from ray.data.preprocessors import Chain, OneHotEncoder, SimpleImputer, StandardScaler

from forge.config import ColumnSchema, ForgeConfig


@dataclass
class FeatureSpec:
    numeric: list[str]
    categorical: list[str]
    derived: dict[str, str] = field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        """Raw columns a request must carry (derived columns are computed)."""
        used = set(self.numeric) | set(self.categorical)
        return [c for c in [*self.numeric, *self.categorical] if c in used and c not in self.derived]


def infer_spec(cfg: ForgeConfig, schema: dict[str, ColumnSchema]) -> FeatureSpec:
    """Features from `features:` in forge.yaml, defaulting to the schema's types."""
    f = cfg.features
    skip = {cfg.data.target, cfg.data.timestamp, cfg.data.entity, *f.drop} - {None}
    numeric = f.numeric if f.numeric is not None else [
        c for c, s in schema.items() if s.type in ("int", "float") and c not in skip
    ]
    categorical = f.categorical if f.categorical is not None else [
        c for c, s in schema.items() if s.type in ("str", "bool") and c not in skip
    ]
    unknown = [c for c in [*numeric, *categorical] if c not in schema and c not in f.derived]
    if unknown:
        raise ValueError(f"features: unknown columns {unknown} (not in the data schema)")
    numeric = [*numeric, *[d for d in f.derived if d not in numeric]]
    return FeatureSpec(numeric=list(numeric), categorical=list(categorical), derived=dict(f.derived))


class FeatureTransform:
    """Derived columns, then a fitted Chain of Ray preprocessors, then a float matrix."""

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        steps = []
        if spec.numeric:
            steps += [SimpleImputer(spec.numeric, strategy="mean"), StandardScaler(spec.numeric)]
        if spec.categorical:
            steps += [SimpleImputer(spec.categorical, strategy="most_frequent"), OneHotEncoder(spec.categorical)]
        self.chain = Chain(*steps)
        self.feature_names: list[str] = []

    def _prepare(self, df: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=df.index)
        for name, expr in self.spec.derived.items():
            out[name] = df.eval(expr).astype("float64")
        for c in self.spec.numeric:
            if c not in self.spec.derived:
                out[c] = pd.to_numeric(df[c].astype(object), errors="coerce").astype("float64")
        for c in self.spec.categorical:
            # pandas' str dtype keeps nulls as nulls; Ray's imputer chokes on object columns under pandas 3.
            out[c] = df[c].astype("str")
        return out

    def fit(self, ds: ray.data.Dataset) -> FeatureTransform:
        """Fit on the training split only."""
        prepared = ds.map_batches(self._prepare, batch_format="pandas")
        self.chain.fit(prepared)
        names = list(self.spec.numeric)
        if self.spec.categorical:
            encoder = self.chain.preprocessors[-1]
            for c in self.spec.categorical:
                cats = encoder.stats_[f"unique_values({c})"]
                names += [f"{c}={k}" for k in cats]
        self.feature_names = names
        return self

    def transform_batch(self, df: pd.DataFrame) -> np.ndarray:
        """Raw rows (pandas) -> float64 feature matrix. The one code path, offline and online."""
        out = self.chain.transform_batch(self._prepare(df))
        parts = [out[self.spec.numeric].to_numpy(dtype="float64")] if self.spec.numeric else []
        for c in self.spec.categorical:
            parts.append(np.stack(out[c].to_numpy()).astype("float64") if len(out) else np.zeros((0, 0)))
        return np.hstack(parts) if parts else np.zeros((len(df), 0))

    def transform(self, ds: ray.data.Dataset, target: str | None = None) -> ray.data.Dataset:
        """Ray Data path: batches of {"features", "label"?} through `transform_batch`."""

        def fn(df: pd.DataFrame) -> dict[str, np.ndarray]:
            batch = {"features": self.transform_batch(df)}
            if target is not None:
                batch["label"] = df[target].to_numpy()
            return batch

        return ds.map_batches(fn, batch_format="pandas")
