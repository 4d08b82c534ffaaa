"""Metrics: the search metric, the full evaluation on the test split, per-slice metrics, HTML."""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from forge.errors import UsageError

MINIMIZE = {"rmse", "mae", "log_loss"}


def default_metric(task: str, n_classes: int) -> str:
    if task == "regression":
        return "rmse"
    return "roc_auc" if n_classes == 2 else "f1_macro"


def mode(metric: str) -> str:
    return "min" if metric in MINIMIZE else "max"


def score(metric: str, y_true: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, classes=None) -> float:
    """One metric. For classification, `proba` columns follow `classes`."""
    if metric == "roc_auc":
        if proba is None:
            raise ValueError("roc_auc needs probabilities")
        if classes is None or len(classes) < 2:  # labels of one class only: undefined, not a crash
            raise ValueError("roc_auc needs two classes")
        if proba.shape[1] == 2:
            return float(skm.roc_auc_score(y_true == classes[1], proba[:, 1]))
        return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    if metric == "f1_macro":
        return float(skm.f1_score(y_true, pred, average="macro"))
    if metric == "f1":
        return float(skm.f1_score(y_true, pred, average="binary" if len(classes) == 2 else "macro",
                                  pos_label=classes[1] if len(classes) == 2 else 1))
    if metric == "accuracy":
        return float(skm.accuracy_score(y_true, pred))
    if metric == "log_loss":
        return float(skm.log_loss(y_true, np.clip(proba, 1e-12, 1), labels=classes))
    if metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y_true, pred)))
    if metric == "mae":
        return float(skm.mean_absolute_error(y_true, pred))
    if metric == "r2":
        return float(skm.r2_score(y_true, pred))
    raise UsageError(f"training.metric: unknown metric {metric!r}")


def evaluate(task: str, y_true, pred, proba=None, classes=None, slices: pd.Series | None = None) -> dict:
    """All metrics of the task, plus a confusion matrix and calibration (classification) and slices."""
    y_true, pred = np.asarray(y_true), np.asarray(pred)
    if task == "regression":
        names = ["rmse", "mae", "r2"]
    else:
        names = ["accuracy", "f1", "f1_macro", "log_loss"] + (["roc_auc"] if len(classes) >= 2 else [])
    out: dict = {"metrics": {n: score(n, y_true, pred, proba, classes) for n in names}, "rows": int(len(y_true))}
    if task == "classification":
        out["confusion_matrix"] = {"labels": [str(c) for c in classes],
                                   "matrix": skm.confusion_matrix(y_true, pred, labels=classes).tolist()}
        if proba is not None and len(classes) == 2:
            frac, mean = _calibration(y_true == classes[1], proba[:, 1])
            out["calibration"] = {"mean_predicted": mean, "fraction_positive": frac}
    if slices is not None:
        out["slices"] = {}
        for value in pd.unique(slices.astype(str)):
            m = (slices.astype(str) == value).to_numpy()
            if m.sum() >= 5 and (task == "regression" or len(np.unique(y_true[m])) > 1):
                sub = evaluate(task, y_true[m], pred[m], proba[m] if proba is not None else None, classes)
                out["slices"][str(value)] = {"rows": int(m.sum()), **sub["metrics"]}
    return out


def baseline(metric: str, y_train, y_test, classes=None) -> dict:
    """The trivial model's score on the test split: the majority class (with the training class shares as its
    probabilities) or the training mean. What a model adds is measured against this."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if classes is None:
        pred = np.full(len(y_test), float(np.mean(y_train)))
        return {"name": "mean", "value": score(metric, y_test, pred, None)}
    values, counts = np.unique(y_train, return_counts=True)
    share = dict(zip(values.tolist(), (counts / counts.sum()).tolist()))
    proba = np.tile([share.get(c, 0.0) for c in np.asarray(classes).tolist()], (len(y_test), 1))
    pred = np.full(len(y_test), values[np.argmax(counts)], dtype=y_train.dtype)
    return {"name": "majority_class", "value": score(metric, y_test, pred, proba, classes)}


def _calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[list, list]:
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    frac, mean = [], []
    for b in range(bins):
        m = idx == b
        if m.any():
            frac.append(float(y[m].mean()))
            mean.append(float(p[m].mean()))
    return frac, mean


def to_html(report: dict, title: str) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in report["metrics"].items())
    extra = html.escape(json.dumps({k: v for k, v in report.items() if k != "metrics"}, indent=2))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif'><h1>{html.escape(title)}</h1><table border=1 cellpadding=4>"
            f"<tr><th>metric</th><th>value</th></tr>{rows}</table><pre>{extra}</pre></body></html>")
