"""Shared benchmark helpers: wall time and peak memory of a whole process tree, ratio tables."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import psutil


def _pss(p: psutil.Process) -> int:
    try:
        return p.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):  # no smaps here: fall back to RSS
        return p.memory_info().rss


class PeakRSS:
    """Samples the summed memory of this process and all its descendants (Ray's workers included).

    PSS, not RSS: Ray's workers all map the shared-memory object store, and summing their RSS counted the
    same pages once per worker (at 5M rows, ~0.8 GB counted 4 times). PSS splits each shared page among the
    processes that map it, so the sum is the tree's real footprint. For a single process it equals RSS
    minus its share of shared libraries.
    """

    def __init__(self, interval: float = 0.5):  # reading smaps costs CPU: every 0.1 s slowed a 2-core run by a third
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _tree_rss(self) -> int:
        me = psutil.Process(os.getpid())
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += _pss(p)
            except psutil.Error:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.base = self._tree_rss()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


@contextmanager
def measure(results: dict, name: str):
    """Record wall seconds and peak tree memory (GB above the starting point) under `name`."""
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        yield
        wall = time.perf_counter() - t0
    results[name] = {"wall_s": round(wall, 2), "peak_gb": round(max(mem.peak - mem.base, 0) / 1e9, 2)}


def in_child(results: dict, name: str, fn, *args) -> dict:
    """Run `fn(*args)` (a module-level function returning a dict) in a fresh spawned process, measured.

    In-process contenders that run after another one reuse the memory Arrow's and the allocator's pools kept from
    it, so their peak above the starting point reads near zero. A fresh process counts everything it touches;
    the wall time is the child's own (imports excluded), the peak the tree's (the child's imports included).
    """
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        with measure(results, name):
            out = pool.apply(_timed, (fn, *args))
    results[name]["wall_s"] = out.pop("wall_s")
    results[name].update(out)
    return out


def _timed(fn, *args) -> dict:
    t0 = time.perf_counter()
    out = fn(*args)
    return {**out, "wall_s": round(time.perf_counter() - t0, 2)}


RECORDS: list[dict] = []  # every row table() printed, for bench/out/results.json


def record(benchmark: str, contender: str, seconds: float, peak_bytes: float | None, ratio: float,
           baseline: str, **extra) -> None:
    RECORDS.append({"benchmark": benchmark, "contender": contender, "seconds": seconds, "peak_bytes": peak_bytes,
                    "ratio": round(ratio, 3), "baseline": baseline, **extra})


def table(title: str, results: dict, baseline: str) -> str:
    base = results[baseline]
    for name, r in results.items():
        ratio = r["wall_s"] / base["wall_s"] if base["wall_s"] else float("nan")
        extra = {k: v for k, v in r.items() if k not in ("wall_s", "peak_gb")}
        record(title, name, r["wall_s"], r.get("peak_gb", 0) * 1e9, ratio, baseline, **extra)
    lines = [f"\n== {title} (ratios against {baseline}, measured in this run) =="]
    for name, r in results.items():
        ratio = r["wall_s"] / base["wall_s"] if base["wall_s"] else float("nan")
        mem = r.get("peak_gb", 0) / base["peak_gb"] if base.get("peak_gb") else float("nan")
        extra = {k: v for k, v in r.items() if k not in ("wall_s", "peak_gb")}
        lines.append(f"  {name:<34} {r['wall_s']:>8.2f} s  x{ratio:5.2f}   peak {r.get('peak_gb', 0):5.2f} GB"
                     f"  x{mem:5.2f}  {extra if extra else ''}")
    return "\n".join(lines)
