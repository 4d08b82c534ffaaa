"""FeatureEngineer: fitted on the training split with Ray Data, applied identically offline and online.

The fitted `FeatureTransform` is one object whose `transform_batch(pandas)` is
the only code path: Ray Data calls it per batch, the served model per request.
Imputation, scaling and one-hot are fitted by `ray.data.preprocessors` (a
Chain); derived columns are pandas expressions, since Ray has no expression
preprocessor.

Applying the fitted Chain through Ray's own `transform_batch` costs about 25 ms
per call on 20 columns, whatever the batch size (pandas work per column): on
the serving path that was the whole latency budget. So `transform_batch`
applies the Chain's fitted statistics with numpy, the same arithmetic in the
same order; `chain_transform` keeps Ray's path, and the tests hold the two
equal on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from forge._columns import by_column
from forge.config import ColumnSchema, ForgeConfig
from forge.errors import UsageError

if TYPE_CHECKING:
    import ray
    from ray.data.preprocessors import Chain


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


def infer_spec(cfg: ForgeConfig, schema: dict[str, ColumnSchema], exclude: list[str] = ()) -> FeatureSpec:
    """Features from `features:` in forge.yaml, defaulting to the schema's types.

    Args:
        exclude: columns validation found constant or ID-like; left out unless `features.keep` names them.
    """
    f = cfg.features
    skip = {cfg.data.target, cfg.data.timestamp, cfg.data.entity, *f.drop, *(set(exclude) - set(f.keep))} - {None}
    numeric = f.numeric if f.numeric is not None else [
        c for c, s in schema.items() if s.type in ("int", "float") and c not in skip
    ]
    categorical = f.categorical if f.categorical is not None else [
        c for c, s in schema.items() if s.type in ("str", "bool") and c not in skip
    ]
    unknown = [c for c in [*numeric, *categorical] if c not in schema and c not in f.derived]
    if unknown:
        raise UsageError(f"features: unknown columns {unknown} (not in the data schema)")
    numeric = [*numeric, *[d for d in f.derived if d not in numeric]]
    return FeatureSpec(numeric=list(numeric), categorical=list(categorical), derived=dict(f.derived))


_EPSILON = 1e-8  # Ray's StandardScaler treats a smaller std as 1


def _numeric(col: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for nulls and unparseable values (as `_prepare` does for Ray's path)."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(col.astype(object), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


SMALL_FRAME = 2048  # rows: below it, per-value Python lookups beat pandas' per-call set-up (a served request)


def _category_codes(values: pd.Series | list, index: dict) -> np.ndarray:
    """Each value's one-hot position in `index` (category -> position, in sorted order), -1 when unknown.

    A hash lookup in C for large frames (a Python dict lookup per value cost seconds per million rows); a dict
    lookup per value for small ones (pd.Categorical cost 0.2 ms a column on a 100-row request, profiled)."""
    if len(values) <= SMALL_FRAME:
        items = values if isinstance(values, list) else values.tolist()
        return np.fromiter(map(index.get, items, repeat(-1)), dtype=np.int64, count=len(values))
    return np.asarray(pd.Categorical(values, categories=list(index)).codes, dtype=np.int64)


def _numeric_block(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Columns as one float64 matrix; a single conversion when they are all numeric already (the usual case)."""
    kinds = dict(zip(df.columns, df.dtypes))  # a dict: indexing df.dtypes by a list cost 0.15 ms a request
    dtypes = [kinds[c] for c in cols]
    if all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in dtypes):
        return df[cols].to_numpy(dtype="float64", na_value=np.nan).reshape(len(df), len(cols))
    return np.column_stack([_numeric(df[c]) for c in cols]) if cols else np.empty((len(df), 0))


def _assemble(fast: dict, x: np.ndarray | None, cats: list, n: int) -> np.ndarray:
    """Imputed and scaled numeric columns, then each categorical column's one-hot block (`cats`: its values with
    nulls filled, in `fast["categorical"]` order)."""
    parts = []
    if x is not None:
        fill, mean, std = fast["numeric"]
        x = np.where(np.isnan(x), fill, x)
        parts.append((x - mean) / std)
    for values, (_, index) in zip(cats, fast["categorical"]):
        codes = _category_codes(values, index)
        block = np.zeros((n, len(index)))
        hit = codes >= 0  # an unknown category is all zeros, as Ray's OneHotEncoder does
        block[np.nonzero(hit)[0], codes[hit]] = 1.0
        parts.append(block)
    return np.hstack(parts) if parts else np.zeros((n, 0))


def _new_chain(spec: FeatureSpec) -> Chain:
    from ray.data.preprocessors import Chain, OneHotEncoder, SimpleImputer, StandardScaler

    steps = []
    if spec.numeric:
        steps += [SimpleImputer(spec.numeric, strategy="mean"), StandardScaler(spec.numeric)]
    if spec.categorical:
        steps += [SimpleImputer(spec.categorical, strategy="most_frequent"), OneHotEncoder(spec.categorical)]
    return Chain(*steps)


class FeatureTransform:
    """Derived columns, then a fitted Chain of Ray preprocessors, then a float matrix."""

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        self._chain = _new_chain(spec)
        self.feature_names: list[str] = []

    @property
    def chain(self) -> Chain:
        """The Chain of Ray preprocessors; after unpickling, rebuilt from its statistics on first use."""
        if "_chain" not in self.__dict__:
            chain = _new_chain(self.spec)
            for step, stats in zip(chain.preprocessors, self.__dict__.pop("_chain_stats", None) or []):
                if stats is not None:
                    step.stats_, step._fitted = stats, True
            self._chain = chain
        return self._chain

    def __getstate__(self) -> dict:
        # The pickle holds the Chain's fitted statistics as plain dicts, not Ray's preprocessor objects: loading
        # a model then imports neither `ray` nor `ray.data`, 0.3 s of every `forge predict` and `forge drift`
        # start (python -X importtime). `transform_batch` needs only `_fast`.
        state = dict(self.__dict__)
        chain = state.pop("_chain", None)
        if chain is not None:
            state["_chain_stats"] = [getattr(step, "stats_", None) for step in chain.preprocessors]
        return state

    def __setstate__(self, state: dict) -> None:
        if "chain" in state:  # pickled before the Chain became a property
            state["_chain"] = state.pop("chain")
        self.__dict__.update(state)

    def _prepare(self, df: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=df.index)
        for name, expr in self.spec.derived.items():
            out[name] = df.eval(expr).astype("float64")
        for c in self.spec.numeric:
            if c not in self.spec.derived:
                out[c] = _numeric(df[c])
        for c in self.spec.categorical:
            # pandas' str dtype keeps nulls as nulls; Ray's imputer chokes on object columns under pandas 3.
            out[c] = df[c].astype("str")
        return out

    def fit(self, data: ray.data.Dataset | pd.DataFrame) -> FeatureTransform:
        """Fit on the training split only: one pass (in process for a frame, Ray Data for a Dataset) whose
        statistics become the Chain's own (forge/features/fitting.py says why they are the same)."""
        from forge.features import fitting

        m = fitting.moments(data, self._prepare, self.spec.numeric, self.spec.categorical)
        for step, stats in zip(self.chain.preprocessors, fitting.chain_stats(m, self.spec.numeric,
                                                                             self.spec.categorical)):
            step.stats_, step._fitted = stats, True
        return self._named()

    def fit_with_ray_chain(self, ds: ray.data.Dataset) -> FeatureTransform:
        """Ray's own multi-pass `Chain.fit`: the reference the one-pass fit is tested against."""
        self.chain.fit(ds.map_batches(self._prepare, batch_format="pandas"))
        return self._named()

    def _named(self) -> FeatureTransform:
        names = list(self.spec.numeric)
        if self.spec.categorical:
            encoder = self.chain.preprocessors[-1]
            for c in self.spec.categorical:
                cats = encoder.stats_[f"unique_values({c})"]
                names += [f"{c}={k}" for k in cats]
        self.feature_names = names
        self._compile()
        return self

    def transform_batch(self, df: pd.DataFrame) -> np.ndarray:
        """Raw rows (pandas) -> float64 feature matrix. The one code path, offline and online."""
        fast = self.__dict__.get("_fast") or self._compile()
        x = None
        if self.spec.numeric:
            x = _numeric_block(df, [c for c in self.spec.numeric if c not in self.spec.derived])
            if self.spec.derived:  # derived columns sit where spec.numeric puts them
                for j, c in enumerate(self.spec.numeric):
                    if c in self.spec.derived:
                        x = np.insert(x, j, df.eval(self.spec.derived[c]).astype("float64").to_numpy(), axis=1)
        cats = [df[c].astype("str").fillna(fill) for c, (fill, _) in zip(self.spec.categorical, fast["categorical"])]
        return _assemble(fast, x, cats, len(df))

    def transform_rows(self, rows: list[dict]) -> np.ndarray | None:
        """JSON rows (a served request) -> the matrix `transform_batch` gives for `DataFrame.from_records(rows)`,
        without building the frame: from_records and pandas' column selection were a quarter of a replica's time
        on 100-row requests (py-spy). None when this needs pandas (a derived column's expression, or a value
        that is not a number in a numeric column): the caller takes the frame path then."""
        if self.spec.derived:
            return None
        fast = self.__dict__.get("_fast") or self._compile()
        k = len(self.spec.numeric)
        columns = by_column(rows, [*self.spec.numeric, *self.spec.categorical])
        x = None
        if k:
            try:
                x = np.array(columns[:k], dtype="float64").reshape(k, len(rows)).T
            except (TypeError, ValueError, OverflowError):
                return None
        cats = [[fill if v is None or v != v else str(v) for v in values]  # v != v: NaN
                for values, (fill, _) in zip(columns[k:], fast["categorical"])]
        return _assemble(fast, x, cats, len(rows))

    def _compile(self) -> dict:
        """The fitted Chain's statistics as arrays (kept on the object, so pickles carry them)."""
        steps = iter(self.chain.preprocessors)
        fast: dict = {"numeric": None, "categorical": []}
        if self.spec.numeric:
            imputer, scaler = next(steps), next(steps)
            fill = [imputer.stats_[f"mean({c})"] for c in self.spec.numeric]
            if any(v is None for v in fill):
                raise UsageError("a numeric feature has no fill value (no non-null training value)")
            mean = np.array([scaler.stats_[f"mean({c})"] for c in self.spec.numeric], dtype="float64")
            std = np.array([scaler.stats_[f"std({c})"] for c in self.spec.numeric], dtype="float64")
            fast["numeric"] = (np.array(fill, dtype="float64"), mean, np.where(std < _EPSILON, 1.0, std))
        if self.spec.categorical:
            imputer, encoder = next(steps), next(steps)
            for c in self.spec.categorical:
                index = dict(encoder.stats_[f"unique_values({c})"])  # category -> one-hot position
                fast["categorical"].append((imputer.stats_[f"most_frequent({c})"], index))
        self._fast = fast
        return fast

    def chain_transform(self, df: pd.DataFrame) -> np.ndarray:
        """Ray's own transform of the fitted Chain: the reference `transform_batch` must equal."""
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
