"""Label-free performance estimation for calibrated binary classifiers (confidence-based, as NannyML's CBPE).

With calibrated probabilities p, a row is correct with probability max(p, 1-p)
at the 0.5 threshold, and a (positive, negative) pair is ranked right with
probability p_i (1 - p_j) when row i scores above row j; the expectations give
accuracy and ROC AUC without labels.
"""

from __future__ import annotations

import numpy as np


def estimate_accuracy(p: np.ndarray) -> float:
    p = np.asarray(p, dtype="float64")
    return float(np.mean(np.maximum(p, 1 - p))) if len(p) else float("nan")


def estimate_roc_auc(p: np.ndarray) -> float:
    p = np.asarray(p, dtype="float64")
    if len(p) < 2:
        return float("nan")
    order = np.argsort(p, kind="stable")
    ps = p[order]
    neg_below = np.cumsum(1 - ps) - (1 - ps)  # expected negatives strictly below each row
    pos, neg = ps.sum(), (1 - ps).sum()
    if pos <= 0 or neg <= 0:
        return float("nan")
    return float(np.sum(ps * neg_below) / (pos * neg))


def estimate(p: np.ndarray) -> dict:
    return {"method": "cbpe", "rows": int(len(p)), "accuracy": estimate_accuracy(p), "roc_auc": estimate_roc_auc(p)}
