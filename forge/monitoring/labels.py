"""Delayed labels: ground truth joined to the prediction log by request id, and live metrics over a window."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from forge.training.evaluation import score


def write_labels(folder: Path, labels: list[dict]) -> tuple[Path, int]:
    """Store [{request_id, label, row?}] as a Parquet file; returns (path, count)."""
    df = pd.DataFrame.from_records(labels)
    if df.empty or not {"request_id", "label"} <= set(df.columns):
        raise ValueError("labels: expected a list of {request_id, label} objects")
    if "row" not in df:
        df["row"] = 0
    df["received"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    path = Path(folder) / f"labels-{int(time.time())}-{uuid.uuid4().hex[:6]}.parquet"
    df[["request_id", "row", "label", "received"]].to_parquet(path, index=False)
    return path, len(df)


def read_labels(folder: Path) -> pd.DataFrame:
    files = sorted(Path(folder).glob("labels-*.parquet"))
    if not files:
        return pd.DataFrame(columns=["request_id", "row", "label", "received"])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).drop_duplicates(
        ["request_id", "row"], keep="last")


def join_labels(log: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Prediction log rows that have a label (inner join on request id and row)."""
    if "row" not in log:
        log = log.assign(row=0)
    return log.merge(labels[["request_id", "row", "label"]], on=["request_id", "row"], how="inner")


def live_metrics(joined: pd.DataFrame, metrics: list[str], classes=None) -> dict:
    """Realised metrics of the served model over labelled log rows, per variant."""
    out = {}
    for variant, g in joined.groupby("variant"):
        y = g["label"].to_numpy()
        pred = g["prediction"].to_numpy()
        res = {"rows": int(len(g))}
        for m in metrics:
            try:
                if m == "roc_auc":
                    s = g["score"].to_numpy()
                    proba = np.c_[1 - s, s]
                    res[m] = score(m, y, pred, proba, np.asarray(classes))
                else:
                    res[m] = score(m, y, pred, None, np.asarray(classes) if classes is not None else None)
            except ValueError:
                res[m] = None
        out[str(variant)] = res
    return out
