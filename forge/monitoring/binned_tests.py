"""Drift statistics computed from bins (forge/monitoring/bins.py): Wasserstein, KS, PSI, Jensen-Shannon, with
their approximation bounds, in the `forge drift --json` shape of `drift.detect`."""

from __future__ import annotations

import numpy as np
from scipy.spatial import distance

from forge.config import DriftConfig
from forge.features.bins import Bins, NumericBins


def _cdfs(ref: NumericBins, cur: NumericBins) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(F_ref, F_cur) just left of each edge, and each bin's share of the reference and of the current data."""
    pr, pc = ref.counts / max(ref.n, 1), cur.counts / max(cur.n, 1)
    return np.cumsum(pr)[:-1], np.cumsum(pc)[:-1], pr, pc


def wasserstein(ref: NumericBins, cur: NumericBins) -> tuple[float, float]:
    """(W1 / reference std, its error bound): CDFs linear inside each bin, tails exact."""
    fr, fc, pr, pc = _cdfs(ref, cur)
    d, width = fr - fc, np.diff(ref.edges)
    d0, d1 = d[:-1], d[1:]
    same = d0 * d1 >= 0
    absum = np.abs(d0) + np.abs(d1)
    crossing = np.divide(d0**2 + d1**2, 2 * absum, out=np.zeros_like(absum), where=absum > 0)
    inner = float(np.sum(width * np.where(same, absum / 2, crossing)))
    tails = (cur.below + cur.above) / max(cur.n, 1)  # the reference has no mass beyond its min and max
    bound = float(np.sum(width * (pr[1:-1] + pc[1:-1])))
    return (inner + tails) / ref.std, bound / ref.std


def ks(ref: NumericBins, cur: NumericBins) -> tuple[float, float]:
    """(KS statistic at the bin edges, how far above it the exact statistic can be)."""
    fr, fc, pr, pc = _cdfs(ref, cur)
    return float(np.max(np.abs(fr - fc))) if len(fr) else 0.0, float(np.max(pr + pc))


def psi(ref: NumericBins, cur: NumericBins, bins: int = 10) -> float:
    """PSI on the reference's deciles: the fine bins merged."""
    cuts = np.searchsorted(np.cumsum(ref.counts) / max(ref.n, 1), np.linspace(0, 1, bins + 1)[1:-1])
    r = np.add.reduceat(ref.counts, np.unique(np.r_[0, cuts])) / max(ref.n, 1)
    c = np.add.reduceat(cur.counts, np.unique(np.r_[0, cuts])) / max(cur.n, 1)
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _categorical(ref: dict[str, int], cur: dict[str, int], cfg: DriftConfig) -> dict:
    cats = sorted(set(ref) | set(cur))
    r = np.array([ref.get(k, 0) for k in cats], dtype=float)
    c = np.array([cur.get(k, 0) for k in cats], dtype=float)
    if cfg.method == "psi":
        rp, cp = np.clip(r / r.sum(), 1e-4, None), np.clip(c / max(c.sum(), 1), 1e-4, None)
        value = float(np.sum((cp - rp) * np.log(cp / rp)))
        return _verdict("psi", value, cfg.psi_threshold)
    value = float(distance.jensenshannon(r / r.sum(), c / max(c.sum(), 1)))
    return _verdict("jensenshannon", value, cfg.jensenshannon_threshold)


def _numeric(ref: NumericBins, cur: NumericBins, cfg: DriftConfig) -> dict:
    if cur.n == 0:
        return {"test": "none", "statistic": None, "p_value": None, "threshold": None, "drifted": False}
    w, w_bound = wasserstein(ref, cur)
    d, d_bound = ks(ref, cur)
    p = psi(ref, cur)
    out = _verdict("psi", p, cfg.psi_threshold) if cfg.method == "psi" else \
        _verdict("wasserstein", w, cfg.wasserstein_threshold)
    return {**out, "error_bound": w_bound if out["test"] == "wasserstein" else None, "ks": d,
            "ks_error_bound": d_bound, "psi": p, "engine": "binned"}


def _verdict(test: str, value: float, threshold: float) -> dict:
    return {"test": test, "statistic": float(value), "p_value": None, "threshold": threshold,
            "drifted": bool(value >= threshold)}


def detect_binned(ref: Bins, cur: Bins, cfg: DriftConfig) -> dict:
    """Per-feature verdicts and the dataset's, as `drift.detect` returns them."""
    features = {c: _numeric(b, cur.numeric[c], cfg) for c, b in ref.numeric.items() if c in cur.numeric}
    features |= {c: _categorical(counts, cur.categorical[c], cfg) for c, counts in ref.categorical.items()
                 if c in cur.categorical}
    n = len(features)
    drifted = sum(f["drifted"] for f in features.values())
    share = drifted / n if n else 0.0
    return {"dataset_drift": bool(n and share >= cfg.drift_share), "drift_share": share,
            "drifted_features": drifted, "n_features": n, "threshold_share": cfg.drift_share,
            "rows_reference": ref.rows, "rows_current": cur.rows, "features": features}
