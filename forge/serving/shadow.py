"""Shadow traffic: a copy of each request for the shadow model, on its own thread, never awaited or returned."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable

MAX_PENDING = 100  # a slow shadow sheds its copies instead of queueing without bound


class ShadowRunner:
    """Runs shadow predictions off the request path; `log` records each one with variant "shadow"."""

    def __init__(self, models: dict[str, object], log: Callable, metrics):
        self.models = models
        self.log = log
        self.metrics = metrics
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="forge-shadow")
        self._lock = threading.Lock()  # the request path adds, the pool's thread subtracts
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, version: str, rows: list[dict], request_id: str) -> bool:
        """Queue one shadow prediction; False (and counted) when too many are already waiting."""
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.metrics.errors.inc(tags={"reason": "shadow_dropped"})
                return False
            self._pending += 1
        self._pool.submit(self._run, version, rows, request_id)
        return True

    def _run(self, version: str, rows: list[dict], request_id: str) -> None:
        try:
            t0 = time.perf_counter()
            model = self.models[version]
            pred, proba = model.predict_rows(rows)
            self.log(rows, pred, model.score_value(pred, proba), version, "shadow", request_id,
                     (time.perf_counter() - t0) * 1000)
        except Exception:  # a failing shadow must never reach the caller; it is counted
            self.metrics.errors.inc(tags={"reason": "shadow"})
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
