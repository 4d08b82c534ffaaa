"""Serving-time feature lookup: a request that carries only an entity id gets the rest from the store.

The replica holds an in-memory `OnlineView` of the feature table (the latest
value per entity) and reloads it when the pipeline writes a newer table.
Values the request does carry win over stored ones.
"""

from __future__ import annotations

import pyarrow.fs as pafs

from forge.config import ForgeConfig
from forge.features.store import FeatureStore, OnlineView


class MissingFeatures(ValueError):
    """Request rows whose omitted features the store cannot supply; `detail` is FastAPI-shaped."""

    def __init__(self, detail: list[dict]):
        super().__init__(f"{len(detail)} missing feature value(s)")
        self.detail = detail


class OnlineFeatures:
    def __init__(self, cfg: ForgeConfig, inputs: list[str]):
        self.entity = cfg.data.entity
        self.table = cfg.features.online.table or cfg.name
        self.inputs = inputs
        self.store = FeatureStore.of(cfg)
        self._stamp: float | None = None
        self.view: OnlineView | None = None
        self.maybe_reload()

    def maybe_reload(self) -> bool:
        """Load the table again if it was rewritten since the last load; True when it did."""
        path = self.store.root / self.table / "meta.json"
        info = path.fs.get_file_info(path.path)
        stamp = info.mtime if info.type != pafs.FileType.NotFound else None
        if stamp == self._stamp:
            return False
        self.view = self.store.online(self.table) if stamp is not None else None
        self._stamp = stamp
        return True

    def fill(self, rows: list[dict]) -> list[dict]:
        """Rows with every model input present: stored values where the request left a feature out.

        Raises:
            MissingFeatures: an omitted feature of an entity the store does not know.
        """
        found = self.view.get_online_features([r[self.entity] for r in rows]) if self.view else [None] * len(rows)
        out, missing = [], []
        for i, (row, stored) in enumerate(zip(rows, found)):
            absent = [c for c in self.inputs if c not in row]
            unknown = [c for c in absent if stored is None or c not in stored]
            if unknown:
                missing += [{"loc": ["body", "instances", i, c], "type": "missing",
                             "msg": f"not in the request, and {self.entity}={row[self.entity]!r} has no stored "
                                    f"value in feature table {self.table!r}"} for c in unknown]
                continue
            out.append({**{c: stored[c] for c in absent}, **row})
        if missing:
            raise MissingFeatures(missing)
        return out
