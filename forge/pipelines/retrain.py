"""Retraining through the gate: trigger, build the new training set, validate, train, gate, swap.

The live app swaps by itself: replicas poll the registry and load the new
@champion before routing to it.
"""

from __future__ import annotations

import json
import uuid

import mlflow
import pandas as pd

from forge.config import ForgeConfig
from forge.data.ingest import validate_dataset
from forge.data.versioning import get_version
from forge.monitoring.labels import join_labels, read_labels
from forge.monitoring.prediction_log import read_log
from forge.pipelines.pipeline import Say, _quiet, schema_of, train
from forge.workspace import Workspace


def labelled_recent(cfg: ForgeConfig) -> pd.DataFrame:
    """Prediction-log rows of the served variants that have a delayed label, as training rows."""
    ws = Workspace.from_config(cfg)
    log = read_log(ws.predictions(cfg.name))
    if log.empty:
        return log
    log = log[log["variant"] != "shadow"]
    joined = join_labels(log, read_labels(ws.labels(cfg.name)))
    return joined.rename(columns={"label": cfg.data.target})


def check_trigger(cfg: ForgeConfig, if_drift: bool, reason: str | None) -> tuple[bool, str, dict | None]:
    if not if_drift:
        return True, reason or "manual", None
    from forge.monitoring.monitor import run_drift

    res = run_drift(cfg, None, multivariate=False)
    share = res["drift_share"]
    if res["dataset_drift"]:
        return True, f"drift: share {share:.2f} >= {cfg.monitoring.drift.drift_share}", res
    return False, f"no drift: share {share:.2f} < {cfg.monitoring.drift.drift_share}", res


def retrain(cfg: ForgeConfig, if_drift: bool = False, reason: str | None = None, say: Say = _quiet) -> dict:
    """Returns the `forge retrain --json` object: triggered, reason, model_version, promoted."""
    triggered, why, drift = check_trigger(cfg, if_drift, reason)
    say(f"retrain: {'triggered' if triggered else 'not triggered'} ({why})")
    if not triggered:
        return {"triggered": False, "reason": why, "model_version": None, "promoted": False}
    ws = Workspace.from_config(cfg)
    base = get_version(ws, cfg.name)
    schema = schema_of(base)
    frame = pd.read_parquet(base.snapshot)
    recent = labelled_recent(cfg) if cfg.retraining.include_labelled else pd.DataFrame()
    gate_frame = None
    if len(recent):
        recent = recent[[c for c in schema if c in recent.columns]]
        frame = pd.concat([frame, recent], ignore_index=True)
        gate_frame = recent  # the gate judges both models on the newest labelled data
        say(f"retrain: {len(frame) - len(recent)} original + {len(recent)} labelled recent rows")
    staged = ws.staging() / f"retrain-{uuid.uuid4().hex[:8]}.parquet"
    frame.to_parquet(staged, index=False)
    data = cfg.data.model_copy(update={"source": str(staged), "format": "parquet", "schema_": schema})
    rcfg = cfg.model_copy(update={"data": data})
    rcfg.config_path = cfg.config_path
    try:
        v = validate_dataset(rcfg)
    finally:
        staged.unlink(missing_ok=True)
    say(f"retrain: data version {v.dataset.version} ({v.rows_valid} rows, parent {base.version})")
    tags = {"forge.retrain.trigger": why, "forge.retrain.parent_data_version": base.version}
    if drift:
        tags["forge.retrain.drift_report"] = drift["report_path"]
    out = train(cfg, v.dataset.version, say=say, extra_tags=tags, gate_frame=gate_frame)
    with mlflow.start_run(run_id=out["run_id"]):
        mlflow.set_tags({"forge.retrain.challenger": out["model_version"],
                         "forge.retrain.champion_before": str(out["gate"]["champion_version"])})
        mlflow.log_dict({"trigger": why, "drift": drift, "gate": out["gate"]}, "retrain/decision.json")
    return {"triggered": True, "reason": why, "model_version": out["model_version"], "promoted": out["promoted"],
            "gate": out["gate"], "data_version": v.dataset.version, "run_id": out["run_id"],
            "drift": json.loads(json.dumps(drift, default=str)) if drift else None}
