"""`forge drift`: the current data (a file or the prediction log window) against the champion's reference."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forge.config import ForgeConfig
from forge.monitoring import drift as d
from forge.monitoring.performance import estimate
from forge.monitoring.prediction_log import read_log
from forge.monitoring.reference import load_reference
from forge.monitoring.report import render
from forge.workspace import Workspace

PREDICTION = "__prediction__"


def read_table(path: str) -> pd.DataFrame:
    p = Path(path)
    if p.is_dir() or p.suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if p.suffix in (".json", ".jsonl"):
        return pd.read_json(p, lines=True)
    return pd.read_csv(p)


def current_window(cfg: ForgeConfig, current: str | None, last: int | None = None) -> tuple[pd.DataFrame, str]:
    """The data to test: a file, or (current None or 'log') the last N prediction-log rows of the champion."""
    if current and current != "log":
        return read_table(current), current
    folder = Workspace.from_config(cfg).predictions(cfg.name)
    df = read_log(folder, last=last or cfg.monitoring.drift.window_rows)
    df = df[df["variant"] != "shadow"] if "variant" in df else df
    return df, f"prediction log ({folder}, last {len(df)} rows)"


def run_drift(cfg: ForgeConfig, current: str | None = None, html_out: str | None = None,
              multivariate: bool = True, last: int | None = None) -> dict:
    from mlflow import MlflowClient

    from forge.registry.registry import CHAMPION, alias_version
    from forge.training.packaging import load_forge_model
    from forge.training.tracking import setup

    setup(cfg)
    client = MlflowClient()
    version = alias_version(client, cfg.name, CHAMPION)
    if version is None:
        raise FileNotFoundError(f"model {cfg.name!r} has no @champion: run `forge run` first")
    mv = client.get_model_version(cfg.name, version)
    ref, stats = load_reference(client, mv.run_id)
    cur, label = current_window(cfg, current, last)
    if cur.empty:
        raise ValueError(f"no current data in {label}")
    numeric = [c for c, s in stats.items() if s["type"] == "numeric"]
    categorical = [c for c, s in stats.items() if s["type"] == "categorical"]
    n_ref = max(s["count"] + s["nulls"] for s in stats.values())
    result = d.detect(ref, cur, numeric, categorical, cfg.monitoring.drift, n_ref)
    model = load_forge_model(f"models:/{cfg.name}/{version}")
    ref_pred = model.score_value(*model.predict_raw(ref))
    cur_pred = cur["score"].to_numpy() if "score" in cur else model.score_value(*model.predict_raw(cur))
    result["prediction"] = d.column_drift(pd.Series(ref_pred), pd.Series(cur_pred), "numeric", cfg.monitoring.drift,
                                          n_ref)
    if multivariate and len(cur) >= 20:
        result["multivariate"] = {
            "domain_classifier": d.domain_classifier(ref, cur, numeric, categorical),
            "mmd": d.mmd(ref, cur, numeric) if numeric else None,
        }
        result["multivariate"] = {k: v for k, v in result["multivariate"].items() if v}
    if model.task == "classification" and model.classes is not None and len(model.classes) == 2:
        result["performance_estimate"] = estimate(np.asarray(cur_pred, dtype=float))
        result["performance_estimate"]["reference"] = estimate(np.asarray(ref_pred, dtype=float))
    result.update({"model_name": cfg.name, "model_version": version, "current": label})
    reports = Workspace.from_config(cfg).reports()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = reports / f"drift-{cfg.name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    result["report_path"] = str(path)
    if html_out:
        Path(html_out).write_text(render(result, ref, cur, numeric, f"Drift: {cfg.name} v{version} vs {label}"))
        result["html_path"] = str(Path(html_out).resolve())
    return result
