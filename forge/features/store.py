"""Offline feature store with point-in-time lookups, and an online (latest value) view.

Feature tables are Parquet, bucketed by a hash of the entity id and sorted by
event time inside each bucket. A historical lookup against a table that fits
(`features.lookup_in_process_rows`) is one pyarrow as-of join in the calling
process; a larger table joins each bucket of entity rows with the same bucket
of features, one Ray task per bucket, so no process holds the whole table.
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

    def __init__(self, root: Location | Path | str, buckets: int = 8, in_process_rows: int = 20_000_000):
        self.root = as_location(root)
        self.buckets = buckets
        self.in_process_rows = in_process_rows

    @classmethod
    def of(cls, cfg) -> FeatureStore:
        """The project's store: the workspace's features/ folder, with the config's lookup threshold."""
        from forge.workspace import Workspace

        return cls(Workspace.from_config(cfg).features(), in_process_rows=cfg.features.lookup_in_process_rows)

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
        if meta["rows"] <= self.in_process_rows:  # fits: one join, no hashing of the entity rows into buckets
            right = pa.concat_tables([(self.root / name / f"bucket-{i:03d}.parquet").read_table(
                columns=[ent, ts, *features]) for i in range(meta["buckets"])])
            return _as_of_in_process(left, right, ent, ts)
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
    return _as_of(left, path.read_table(columns=[ent, ts, *features]), ent, ts)


def _as_of_in_process(left: pa.Table, right: pa.Table, ent: str, ts: str) -> pd.DataFrame:
    """The same join with pandas' merge_asof: pyarrow's as-of join took 18.6 s where merge_asof took 0.56 s
    (1M entity rows against 2M feature rows, 100k entities: its cost grows with the rows per call, which the
    bucketed path keeps small). Rows without a timestamp match nothing, as in the Arrow path."""
    t = _micros(left.column(ts))
    timed = np.asarray(pc.is_valid(t))
    rows = np.flatnonzero(timed)
    lt = np.asarray(pc.fill_null(t, 0))[rows]
    order = np.argsort(lt, kind="stable")  # the input's order is restored by its inverse: a take, not a sort
    lf = left.select([ent, ts]).take(pa.array(rows[order])).append_column(_T, pa.array(lt[order])).to_pandas()
    rf = right.append_column(_T, _micros(right.column(ts))).drop_columns([ts])
    rf = rf.filter(pc.is_valid(rf.column(_T))).to_pandas().sort_values(_T, kind="stable")
    matched = pd.merge_asof(lf, rf, on=_T, by=ent, direction="backward").drop(columns=[_T])
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    out = matched.take(inverse).reset_index(drop=True)
    if len(rows) == left.num_rows:
        return out
    full = left.select([ent, ts]).to_pandas().join(out.drop(columns=[ent, ts]).set_axis(rows))
    return full[out.columns]


def _as_of(left: pa.Table, right: pa.Table, ent: str, ts: str) -> pa.Table:
    left = left.append_column(_T, _micros(left.column(ts)))
    timed = pc.is_valid(left.column(_T))  # Arrow's as-of join refuses null keys ("out-of-order on-key values")
    right = right.append_column(_T, _micros(right.column(ts))).drop_columns([ts])
    right = right.filter(pc.is_valid(right.column(_T))).sort_by(_T)
    # Negative tolerance: match the latest right row at or before the left row (never the future).
    joined = left.filter(timed).sort_by(_T).join_asof(right, on=_T, by=ent, tolerance=-(2**62))
    untimed = left.filter(pc.invert(timed))
    if untimed.num_rows:  # no timestamp: no match, nulls
        joined = pa.concat_tables([joined, untimed], promote_options="default")
    return joined.drop_columns([_T])


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
