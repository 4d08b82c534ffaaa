"""Reading a local file's Arrow batches on a background thread, a bounded number of batches ahead.

`forge drift --current FILE` and `forge predict` start one before they import MLflow (and SciPy) and resolve the
champion: 1.5-2.5 s of imports that hold the GIL, beside which Arrow's decode (which releases it) runs on the
second core for free. Afterwards the read of batch k+1 overlaps the work on batch k. Memory stays bounded by
`depth` batches whatever the file's size; a read error is raised in the consumer, as its own read would raise it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa


class ReadAhead:
    """The batches `read()` yields, produced on a daemon thread at most `depth` batches ahead of `batches()`."""

    def __init__(self, read: Callable[[], Iterable[pa.RecordBatch]], depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(read,), daemon=True, name="forge-read-ahead")
        self.thread.start()

    def _run(self, read: Callable[[], Iterable[pa.RecordBatch]]) -> None:
        try:
            for batch in read():
                if self._stop.is_set():
                    return
                self._queue.put(batch)
        except Exception as e:  # handed to the consumer, raised where its own read would have raised
            self._queue.put(e)
            return
        self._queue.put(None)

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The batches in order (restricted to those of `columns` each has, when given)."""
        while (item := self._queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item if columns is None else item.select([c for c in columns if c in item.schema.names])

    def close(self) -> None:
        """Stop the reader (it ends after at most one more batch) and drop what it read."""
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
