"""Offline feature store with point-in-time lookups, and an online (latest value) view.

Feature tables are Parquet, bucketed by a hash of the entity id and sorted by
event time inside each bucket. A historical lookup joins each bucket of entity
rows with the same bucket of features using pyarrow's as-of join, one Ray task
per bucket, so no process holds the whole table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from forge.errors import NotFoundError
from forge.storage import Location, as_location

_ROW = "__row"
_T = "__t"


def _bucket(ids: pa.Array | pd.Series, buckets: int) -> np.ndarray:
    values = pd.Series(ids.to_pandas() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else ids)
    return (pd.util.hash_array(values.astype(str).to_numpy()) % buckets).astype(np.int64)


def _micros(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.cast(pc.cast(col, pa.timestamp("us")), pa.int64())


class FeatureStore:
    """Feature tables under `root` (the workspace's features/ folder)."""

    def __init__(self, root: Location | Path | str, buckets: int = 8):
        self.root = as_location(root)
        self.buckets = buckets

    def _meta(self, name: str) -> dict:
        path = self.root / name / "meta.json"
        if not path.exists():
            raise NotFoundError(f"feature table {name!r} not found under {self.root}")
        return json.loads(path.read_text())

    def write_table(self, name: str, df: pd.DataFrame | pa.Table, entity: str, timestamp: str,
                    source_version: str | None = None) -> Location:
        """Write (replace) a feature table from a frame of entity, timestamp and feature columns."""
        table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
        folder = self.root / name
        folder.rmtree()
        b = _bucket(table.column(entity), self.buckets)
        for i in range(self.buckets):
            part = table.filter(pa.array(b == i)).sort_by([(timestamp, "ascending"), (entity, "ascending")])
            (folder / f"bucket-{i:03d}.parquet").write_table(part)
        features = [c for c in table.column_names if c not in (entity, timestamp)]
        meta = {"entity": entity, "timestamp": timestamp, "features": features, "buckets": self.buckets,
                "source_version": source_version, "rows": table.num_rows}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))
        return folder

    def get_historical_features(self, name: str, entity_rows: pd.DataFrame,
                                features: list[str] | None = None) -> pd.DataFrame:
        """For each (entity, timestamp) row: the latest feature values at or before that timestamp.

        Rows with no earlier feature value get nulls. The result keeps the input's row order.
        """
        meta = self._meta(name)
        ent, ts = meta["entity"], meta["timestamp"]
        features = features or meta["features"]
        left = pa.Table.from_pandas(entity_rows[[ent, ts]], preserve_index=False)
        left = left.append_column(_ROW, pa.array(np.arange(left.num_rows)))
        b = _bucket(left.column(ent), meta["buckets"])
        jobs = [(left.filter(pa.array(b == i)), self.root / name / f"bucket-{i:03d}.parquet")
                for i in range(meta["buckets"]) if (b == i).any()]
        args = dict(ent=ent, ts=ts, features=features)
        import ray

        if ray.is_initialized() and len(entity_rows) > 50_000:
            task = ray.remote(_join_bucket)
            parts = ray.get([task.remote(lb, path, **args) for lb, path in jobs])
        else:
            parts = [_join_bucket(lb, path, **args) for lb, path in jobs]
        joined = pa.concat_tables(parts).sort_by(_ROW) if parts else left
        return joined.drop_columns([_ROW]).to_pandas()

    def online(self, name: str) -> OnlineView:
        return OnlineView.from_store(self, name)


def _join_bucket(left: pa.Table, path: Location, ent: str, ts: str, features: list[str]) -> pa.Table:
    right = path.read_table(columns=[ent, ts, *features])
    left = left.append_column(_T, _micros(left.column(ts))).sort_by(_T)
    right = right.append_column(_T, _micros(right.column(ts))).drop_columns([ts]).sort_by(_T)
    # Negative tolerance: match the latest right row at or before the left row (never the future).
    return left.join_asof(right, on=_T, by=ent, tolerance=-(2**62)).drop_columns([_T])


class OnlineView:
    """Latest feature values per entity, materialised in memory for the serving path."""

    def __init__(self, entity: str, rows: dict, features: list[str]):
        self.entity = entity
        self.rows = rows
        self.features = features

    @classmethod
    def from_store(cls, store: FeatureStore, name: str) -> OnlineView:
        meta = store._meta(name)
        ent, ts = meta["entity"], meta["timestamp"]
        rows: dict = {}
        for i in range(meta["buckets"]):
            t = (store.root / name / f"bucket-{i:03d}.parquet").read_table().to_pandas()
            latest = t.sort_values(ts, kind="stable").groupby(ent, sort=False).tail(1)
            # Keys as text: a JSON request may send the id 42 or "42" for the same entity.
            rows.update({str(k): r for k, r in zip(latest[ent].tolist(),
                                               latest[meta["features"]].to_dict(orient="records"))})
        return cls(ent, rows, meta["features"])

    def get_online_features(self, entity_ids: list) -> list[dict | None]:
        """Latest values for each id; None for an id the store has never seen."""
        return [self.rows.get(str(i)) for i in entity_ids]
