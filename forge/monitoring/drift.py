"""Drift detection: univariate tests chosen as Evidently does, dataset share, and multivariate tests.

Univariate (per feature, and for the prediction), by reference size:
- at most `small_reference_rows` rows: KS for numeric columns with more than 5 unique values,
  chi-square otherwise (drift when p < p_value);
- above: Wasserstein distance normalised by the reference std (numeric) or Jensen-Shannon
  distance (categorical), drift at or above the threshold (0.1 each);
- `method: psi` uses PSI for every column instead.
Multivariate: a domain classifier (held-out ROC AUC, Mann-Whitney p-value) and MMD with a
permutation test, both on bounded subsamples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from forge.config import DriftConfig
from forge.monitoring.window import Current, WindowSummary
from forge.monitoring.window import finite as _numeric
from forge.monitoring.window import value_counts as _counts


def _align(r: pd.Series, c: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Two value-count series over the union of their categories."""
    cats = sorted(set(r.index) | set(c.index))
    return r.reindex(cats, fill_value=0).to_numpy(float), c.reindex(cats, fill_value=0).to_numpy(float)


def psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10, cur_weights: np.ndarray | None = None) -> float:
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    r = np.histogram(ref, edges)[0] / max(len(ref), 1)
    c = np.histogram(cur, edges, weights=cur_weights)[0]
    c = c / max(c.sum(), 1e-12)
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r)))


def column_drift(ref: pd.Series, cur: pd.Series | Current, kind: str, cfg: DriftConfig,
                 ref_rows: int | None = None) -> dict:
    """One column's test, statistic, p-value (or None), threshold and verdict.

    Args:
        cur: the current values, or a window summarised with Ray Data (forge.monitoring.window).
    """
    cur = cur if isinstance(cur, Current) else Current(raw=cur)
    n_ref = ref_rows if ref_rows is not None else int(ref.notna().sum())
    if kind == "numeric":
        r, (c, w) = _numeric(ref), cur.numeric()
        if len(r) == 0 or c is None or len(c) == 0:
            return {"test": "none", "statistic": None, "p_value": None, "threshold": None, "drifted": False}
    if cfg.method == "psi":
        if kind == "numeric":
            value = psi(r, c, cur_weights=w)
        else:
            rf, cf = _align(_counts(ref), cur.category_counts())
            rp, cp = np.clip(rf / rf.sum(), 1e-4, None), np.clip(cf / max(cf.sum(), 1), 1e-4, None)
            value = float(np.sum((cp - rp) * np.log(cp / rp)))
        return _verdict("psi", value, None, cfg.psi_threshold, value >= cfg.psi_threshold)
    if n_ref <= cfg.small_reference_rows:
        # A summarised window brings a uniform subsample for these; against a small reference it costs no power.
        if kind == "numeric" and len(np.unique(r)) > 5:
            res = stats.ks_2samp(r, _numeric(cur.rows()))
            return _verdict("ks", res.statistic, res.pvalue, cfg.p_value, res.pvalue < cfg.p_value)
        if kind == "numeric":
            rf, cf = _align(_counts(ref.astype(str)), _counts(cur.rows().astype(str)))
        else:
            rf, cf = _align(_counts(ref), cur.category_counts())
        keep = (rf + cf) > 0
        if keep.sum() < 2:
            return _verdict("chi_square", 0.0, 1.0, cfg.p_value, False)
        chi2, p, _, _ = stats.chi2_contingency(np.vstack([rf[keep], cf[keep]]))
        return _verdict("chi_square", chi2, p, cfg.p_value, p < cfg.p_value)
    if kind == "numeric":
        std = float(np.std(r)) or 1.0
        value = stats.wasserstein_distance(r, c, None, w) / std
        return _verdict("wasserstein", value, None, cfg.wasserstein_threshold, value >= cfg.wasserstein_threshold)
    rf, cf = _align(_counts(ref), cur.category_counts())
    value = float(distance.jensenshannon(rf / rf.sum(), cf / max(cf.sum(), 1)))
    return _verdict("jensenshannon", value, None, cfg.jensenshannon_threshold, value >= cfg.jensenshannon_threshold)


def _verdict(test: str, statistic, p_value, threshold, drifted) -> dict:
    return {"test": test, "statistic": None if statistic is None else float(statistic),
            "p_value": None if p_value is None else float(p_value), "threshold": threshold, "drifted": bool(drifted)}


def detect(reference: pd.DataFrame, current: pd.DataFrame | WindowSummary, numeric: list[str], categorical: list[str],
           cfg: DriftConfig, ref_rows: int | None = None) -> dict:
    """Univariate drift per feature and the dataset verdict (the `forge drift --json` shape)."""
    features = {}
    for col in numeric + categorical:
        if col in reference and col in current:
            features[col] = column_drift(reference[col], current[col], "numeric" if col in numeric else "categorical",
                                         cfg, ref_rows)
    n = len(features)
    drifted = sum(f["drifted"] for f in features.values())
    share = drifted / n if n else 0.0
    return {"dataset_drift": bool(n and share >= cfg.drift_share), "drift_share": share,
            "drifted_features": drifted, "n_features": n, "threshold_share": cfg.drift_share,
            "rows_reference": int(ref_rows or len(reference)), "rows_current": int(len(current)),
            "features": features}


def _encode(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]):
    both = pd.concat([reference[numeric + categorical], current[numeric + categorical]], ignore_index=True)
    X = pd.get_dummies(both, columns=categorical, dummy_na=True, dtype=float)
    X[numeric] = X[numeric].apply(lambda s: pd.to_numeric(s, errors="coerce"))
    X = X.fillna(X.median(numeric_only=True)).fillna(0.0).to_numpy(dtype="float64")
    return X, np.r_[np.zeros(len(reference)), np.ones(len(current))]


def domain_classifier(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str],
                      max_rows: int = 2000, auc_threshold: float = 0.55, p_value: float = 0.05, seed: int = 0) -> dict:
    """Can a classifier tell reference from current? Drift when held-out AUC > threshold and significant."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    ref = reference.sample(min(len(reference), max_rows), random_state=seed)
    cur = current.sample(min(len(current), max_rows), random_state=seed)
    X, y = _encode(ref, cur, numeric, categorical)
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.4, random_state=seed, stratify=y)
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(Xa, ya)
    s = clf.predict_proba(Xb)[:, 1]
    auc = float(roc_auc_score(yb, s))
    p = float(stats.mannwhitneyu(s[yb == 1], s[yb == 0], alternative="greater").pvalue)
    return {"test": "domain_classifier", "roc_auc": auc, "p_value": p, "threshold": auc_threshold,
            "drifted": bool(auc > auc_threshold and p < p_value)}


def mmd(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], max_rows: int = 400,
        permutations: int = 200, p_value: float = 0.05, seed: int = 0) -> dict:
    """Maximum mean discrepancy (RBF kernel, median bandwidth) with a permutation test, on numeric features."""
    rng = np.random.default_rng(seed)
    ref = reference[numeric].apply(pd.to_numeric, errors="coerce").dropna()
    cur = current[numeric].apply(pd.to_numeric, errors="coerce").dropna()
    ref = ref.sample(min(len(ref), max_rows), random_state=seed).to_numpy(float)
    cur = cur.sample(min(len(cur), max_rows), random_state=seed).to_numpy(float)
    mu, sd = ref.mean(0), ref.std(0) + 1e-12
    Z = np.vstack([(ref - mu) / sd, (cur - mu) / sd])
    d2 = distance.squareform(distance.pdist(Z, "sqeuclidean"))
    K = np.exp(-d2 / np.median(d2[d2 > 0]))
    # Every permutation at once: with s the 0/1 vector of the first group, the three block means are
    # s'Ks/n², (1-s)'K(1-s)/m² and s'K(1-s)/nm, so one matrix product replaces 200 x 3 fancy-indexed
    # submatrices (0.45 s -> about 0.03 s at 400 + 400 rows). The permutations are the same draws as before.
    n, m = len(ref), len(cur)
    perms = [np.arange(len(Z))] + [rng.permutation(len(Z)) for _ in range(permutations)]
    S = np.zeros((len(Z), len(perms)))
    for j, idx in enumerate(perms):
        S[idx[:n], j] = 1.0
    aa = np.einsum("ij,ij->j", S, K @ S)
    a_all = S.T @ K.sum(axis=1)
    ab = a_all - aa
    bb = K.sum() - 2 * a_all + aa
    stat = aa / n**2 + bb / m**2 - 2 * ab / (n * m)
    observed, null = stat[0], stat[1:]
    p = float((1 + (null >= observed).sum()) / (1 + permutations))
    return {"test": "mmd", "statistic": float(observed), "p_value": p, "threshold": p_value, "drifted": p < p_value}
