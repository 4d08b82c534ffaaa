"""The prediction path of a replica: dynamic batching of one-row requests, and per-row refusal.

`@serve.batch` is configured from `serving.batching` alone: the batcher is built per replica from the config,
not declared with defaults that the constructor then overwrites.
"""

from __future__ import annotations

import numpy as np
from ray import serve

from forge.config import BatchingConfig
from forge.training.packaging import InputOutOfRange

Prediction = tuple[np.ndarray, "np.ndarray | None"]


class Predictor:
    """Runs ForgeModel.predict_rows, batching concurrent one-row requests to the same version."""

    def __init__(self, models: dict[str, object], batching: BatchingConfig):
        self.models = models  # version -> ForgeModel, owned by the router (read only here)
        self.enabled = batching.enabled

        async def predict_many(items: list[tuple[str, list[dict]]]) -> list:
            return self._predict_many(items)

        self._batched = serve.batch(max_batch_size=batching.max_batch_size,
                                    batch_wait_timeout_s=batching.batch_wait_timeout_s)(predict_many)

    async def predict(self, version: str, rows: list[dict]) -> Prediction:
        """(predictions, probabilities) for validated request rows.

        Raises:
            InputOutOfRange: rows whose scaled features overflow (bad input: the caller answers 422).
        """
        if len(rows) == 1 and self.enabled:
            result = await self._batched((version, rows))
            if isinstance(result, Exception):
                raise result
            return result
        return self.models[version].predict_rows(rows)

    def _predict_many(self, items: list[tuple[str, list[dict]]]) -> list:
        """One answer per item; an item whose row the model refuses gets the exception, the others their
        answers (one caller's bad row must not fail the requests it was batched with)."""
        out: list = [None] * len(items)
        for version in {v for v, _ in items}:
            idx = [i for i, (v, _) in enumerate(items) if v == version]
            model = self.models[version]
            try:
                pred, proba = model.predict_rows([row for i in idx for row in items[i][1]])
            except InputOutOfRange:
                for i in idx:
                    try:
                        out[i] = model.predict_rows(items[i][1])
                    except InputOutOfRange as e:
                        out[i] = e
                continue
            for j, i in enumerate(idx):
                out[i] = (pred[j : j + 1], None if proba is None else proba[j : j + 1])
        return out
