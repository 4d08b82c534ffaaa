"""Drift and label-free performance on a replica's live window, computed off the request path.

The window keeps the newest `monitoring.drift.window_rows` served rows (and the champion's positive-class
scores, for binary models). At most one computation runs at a time, at most every `live_interval_s`.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from forge.config import DriftConfig
from forge.registry.client import Registry

MIN_ROWS = 50  # fewer rows than this say nothing about a distribution


class LiveMonitor:
    """The live window and its gauges: forge_feature_drift_score, forge_dataset_drift_share, CBPE."""

    def __init__(self, registry: Registry, drift: DriftConfig, metrics, champion: Callable[[], tuple[str, str]]):
        """`champion()` gives the (version, run id) the window is compared with."""
        self.registry = registry
        self.cfg = drift
        self.metrics = metrics
        self.champion = champion
        self._window: collections.deque = collections.deque(maxlen=drift.window_rows)
        self._scores: collections.deque = collections.deque(maxlen=drift.window_rows)
        self._lock = threading.Lock()
        self._since = 0
        self._last = float("-inf")
        self._busy = threading.Lock()
        self._reference: tuple | None = None

    def observe(self, rows: list[dict], scores=None) -> None:
        """Add served rows (and champion scores); start a computation when one is due."""
        with self._lock:
            self._window.extend(rows)
            if scores is not None:
                self._scores.extend(float(x) for x in scores)
            self._since += len(rows)
            due = time.monotonic() - self._last >= self.cfg.live_interval_s
            if not (due and self._since >= max(MIN_ROWS, self._window.maxlen // 2)):
                return
            if not self._busy.acquire(blocking=False):
                return
            self._since, self._last = 0, time.monotonic()
            rows_now, scores_now = list(self._window), np.array(self._scores)
        threading.Thread(target=self._compute, args=(rows_now, scores_now), daemon=True,
                         name="forge-live-drift").start()

    def _compute(self, rows: list[dict], scores: np.ndarray) -> None:
        from forge.monitoring.drift import detect

        try:
            version, run_id = self.champion()
            if self._reference is None or self._reference[0] != run_id:  # downloaded once per champion
                self._reference = (run_id, *self.registry.reference(run_id))
            _, ref, stats = self._reference
            numeric = [c for c, s in stats.items() if s["type"] == "numeric"]
            categorical = [c for c, s in stats.items() if s["type"] == "categorical"]
            n_ref = max(s["count"] + s["nulls"] for s in stats.values())
            res = detect(ref, pd.DataFrame(rows), numeric, categorical, self.cfg, n_ref)
            for name, f in res["features"].items():
                if f["statistic"] is not None:
                    self.metrics.feature_drift.set(f["statistic"], tags={"feature": name})
                self.metrics.feature_drifted.set(1.0 if f["drifted"] else 0.0,
                                                 tags={"model": self.registry.name, "feature": name})
            self.metrics.drift_share.set(res["drift_share"])
            if len(scores) >= MIN_ROWS:
                self._estimate(scores, version)
        except Exception:  # a monitoring failure is counted; it never touches the request path
            self.metrics.errors.inc(tags={"reason": "drift"})
        finally:
            self._busy.release()

    def _estimate(self, scores: np.ndarray, version: str) -> None:
        from forge.monitoring.performance import estimate

        est = estimate(scores)
        for metric in ("accuracy", "roc_auc"):
            if np.isfinite(est[metric]):
                self.metrics.estimated_performance.set(est[metric], tags={
                    "model": self.registry.name, "version": version, "metric": metric})
