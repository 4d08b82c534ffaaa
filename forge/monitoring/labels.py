"""Delayed labels: ground truth joined to the prediction log by request id, and live metrics over a window."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from forge.data.formats import format_of
from forge.errors import UsageError
from forge.storage import Location, as_location
from forge.training.evaluation import score


def write_labels(folder: Location | Path, labels: list[dict]) -> tuple[Location, int]:
    """Store [{request_id, label, row?}] as a Parquet file; returns (path, count)."""
    df = pd.DataFrame.from_records(labels)
    if df.empty or not {"request_id", "label"} <= set(df.columns):
        raise UsageError("labels: expected a list of {request_id, label} objects")
    if "row" not in df:
        df["row"] = 0
    df["received"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    path = as_location(folder) / f"labels-{int(time.time())}-{uuid.uuid4().hex[:6]}.parquet"
    path.write_table(pa.Table.from_pandas(df[["request_id", "row", "label", "received"]], preserve_index=False))
    return path, len(df)


def read_label_file(path: str) -> list[dict]:
    """Label records from a CSV, Parquet or JSON lines file (request ids are kept as text)."""
    fmt = format_of(path)
    if fmt == "parquet":
        df = pd.read_parquet(path)
    elif fmt == "json":
        df = pd.read_json(path, lines=True, dtype={"request_id": str})
    else:
        df = pd.read_csv(path, dtype={"request_id": str})
    return df.to_dict(orient="records")


def read_labels(folder: Location | Path) -> pd.DataFrame:
    files = as_location(folder).glob("labels-*.parquet")
    if not files:
        return pd.DataFrame(columns=["request_id", "row", "label", "received"])
    return pd.concat([f.read_table().to_pandas() for f in files], ignore_index=True).drop_duplicates(
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


@dataclass
class LivePerformance:
    """The champion's realised metric over labelled predictions; `live_value` is None until
    `retraining.min_labelled` rows have labels."""

    version: str
    metric: str
    mode: str
    test_value: float | None
    live_value: float | None
    rows: int
    per_variant: dict

    def decayed(self, drop: float) -> bool:
        """True when the live metric is worse than the test-time one by more than `drop` (absolute)."""
        if self.live_value is None or self.test_value is None:
            return False
        gap = self.test_value - self.live_value
        return (gap if self.mode == "max" else -gap) > drop

    def with_decay(self, drop: float) -> dict:
        """The `forge labels report --json` object."""
        return {**asdict(self), "decayed": self.decayed(drop)}


def live_performance(cfg, window: int | None = None) -> LivePerformance:
    """The champion's realised metric over its newest labelled predictions, beside its test-time metric."""
    from forge.monitoring.prediction_log import read_log
    from forge.registry.client import Registry
    from forge.training import evaluation
    from forge.workspace import Workspace

    ws = Workspace.from_config(cfg)
    registry = Registry.of(cfg)
    version = registry.require()
    mv = registry.model_version(version)
    metric = mv.tags.get("forge.metric", "").partition("=")[0] or cfg.training.metric
    test_value = registry.run(mv.run_id).data.metrics.get(f"test_{metric}")
    log = read_log(ws.prediction_folder(cfg))
    joined = join_labels(log[log["variant"] != "shadow"], read_labels(ws.labels(cfg.name))) if len(log) else log
    window = window or cfg.retraining.performance_window
    per_variant, mine, live = {}, joined, None
    if len(joined):
        joined = joined.sort_values("timestamp")
        classes = sorted(set(joined["label"]) | set(joined["prediction"]))  # every log row carries a score
        per_variant = live_metrics(joined.tail(window), [metric], classes)
        mine = joined[joined["model_version"].astype(str) == version].tail(window)
        if len(mine) >= cfg.retraining.min_labelled:
            live = live_metrics(mine.assign(variant="champion"), [metric], classes)["champion"][metric]
    return LivePerformance(version, metric, evaluation.mode(metric), test_value, live, int(len(mine)), per_variant)
