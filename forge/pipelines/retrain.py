"""Retraining through the gate: trigger, build the new training set, validate, train, gate, swap.

The live app swaps by itself: replicas poll the registry and load the new
@champion before routing to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import mlflow
import pandas as pd
import pyarrow as pa

from forge.config import ForgeConfig
from forge.data.ingest import validate_dataset
from forge.data.versioning import DatasetVersion, get_version
from forge.monitoring.labels import join_labels, read_labels
from forge.monitoring.monitor import DriftResult
from forge.monitoring.prediction_log import read_log
from forge.pipelines.pipeline import Say, schema_of, silent, train
from forge.registry.registry import GateResult
from forge.workspace import Workspace


def labelled_recent(cfg: ForgeConfig) -> pd.DataFrame:
    """Prediction-log rows of the served variants that have a delayed label, as training rows."""
    ws = Workspace.from_config(cfg)
    log = read_log(ws.prediction_folder(cfg))
    if log.empty:
        return log
    log = log[log["variant"] != "shadow"]
    joined = join_labels(log, read_labels(ws.labels(cfg.name)))
    return joined.rename(columns={"label": cfg.data.target})


def original_version(ws: Workspace, name: str) -> DatasetVersion:
    """The newest dataset that is not itself a retraining's product.

    Every retraining starts again from it, so labelled rows added by one retraining are not added twice by the next.
    """
    dv = get_version(ws, name)
    base = dv.manifest.get("retrain_base")
    return get_version(ws, name, base) if base else dv


def check_trigger(cfg: ForgeConfig, if_drift: bool, reason: str | None,
                  if_decay: bool = False) -> tuple[bool, str, DriftResult | None]:
    """With neither condition asked for, a manual run always triggers; otherwise either condition does.

    Returns:
        (triggered, why, drift result or None)
    """
    if not (if_drift or if_decay):
        return True, reason or "manual", None
    fired, quiet, res = [], [], None
    if if_decay:
        from forge.monitoring.labels import live_performance

        perf = live_performance(cfg)
        m, live, test = perf.metric, perf.live_value, perf.test_value
        shown = "n/a" if live is None else f"{live:.4f}"
        text = (f"live {m} {shown} over {perf.rows} labelled rows vs {test:.4f} at test time "
                f"(allowed drop {cfg.retraining.performance_drop}, needs {cfg.retraining.min_labelled} labels)")
        if perf.decayed(cfg.retraining.performance_drop):
            fired.append(f"performance: {text}")
        else:
            quiet.append(f"no decay: {text}")
    if if_drift:
        from forge.monitoring.monitor import run_drift

        res = run_drift(cfg, None, multivariate=False)
        share, limit = res.drift_share, cfg.monitoring.drift.drift_share
        if res.dataset_drift:
            fired.append(f"drift: share {share:.2f} >= {limit}")
        else:
            quiet.append(f"no drift: share {share:.2f} < {limit}")
    return bool(fired), "; ".join(fired or quiet), res


def training_set(cfg: ForgeConfig, original: pd.DataFrame, schema: dict,
                 say: Say) -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
    """The original rows plus labelled served rows, and the newest labelled rows held out for the gate.

    Returns:
        (training frame, its schema, gate frame or None)
    """
    recent = labelled_recent(cfg) if cfg.retraining.include_labelled else pd.DataFrame()
    frame, gate_frame = original, None
    if len(recent):
        # The newest labelled rows are the gate's exam; a challenger that trained on them would pass unfairly.
        recent = recent.sort_values("timestamp", kind="stable")
        n_gate = int(round(len(recent) * cfg.retraining.gate_holdout))
        learn, gate_frame = recent.iloc[: len(recent) - n_gate], recent.iloc[len(recent) - n_gate :]
        ts, ent = cfg.data.timestamp, cfg.data.entity
        if ts and ts not in learn.columns:  # a served row happened when it was served (keeps time order)
            learn = learn.assign(**{ts: learn["timestamp"]})
        if ent and ent in schema and ent not in learn.columns:
            # Served rows without the id: it is no feature, so leave it out rather than fill it with nulls.
            schema = {k: v for k, v in schema.items() if k != ent}
            frame = frame.drop(columns=[ent])
        learn = learn[[c for c in schema if c in learn.columns]]
        frame = pd.concat([frame, learn], ignore_index=True)
        say(f"retrain: {len(original)} original + {len(learn)} labelled recent rows; the gate judges on the "
            f"newest {len(gate_frame)} labelled rows, held out")
    limit = cfg.retraining.window_rows
    if limit and len(frame) > limit:
        if cfg.data.timestamp:
            frame = frame.sort_values(cfg.data.timestamp, kind="stable")
        frame = frame.tail(limit)
        say(f"retrain: training on the newest {len(frame)} of them (retraining.window_rows)")
    return frame, schema, gate_frame


@dataclass
class RetrainResult:
    """What a retraining check did: whether it triggered and why, and what the gate decided."""

    triggered: bool
    reason: str
    model_version: str | None = None
    promoted: bool = False
    gate: GateResult | None = None
    data_version: str | None = None
    run_id: str | None = None
    drift: DriftResult | None = None

    def to_dict(self) -> dict:
        """The `forge retrain --json` object (a check that did not trigger has the first four keys only)."""
        head = {"triggered": self.triggered, "reason": self.reason, "model_version": self.model_version,
                "promoted": self.promoted}
        if not self.triggered:
            return head
        return {**head, "gate": self.gate.to_dict() if self.gate else None, "data_version": self.data_version,
                "run_id": self.run_id, "drift": self.drift.to_dict() if self.drift else None}


def retrain(cfg: ForgeConfig, if_drift: bool = False, reason: str | None = None, say: Say = silent,
            if_decay: bool = False) -> RetrainResult:
    """One retraining check: trigger, training set, validation, training and the gate."""
    triggered, why, drift = check_trigger(cfg, if_drift, reason, if_decay)
    say(f"retrain: {'triggered' if triggered else 'not triggered'} ({why})")
    if not triggered:
        if reason:  # someone asked (an alert, a schedule): the check and its outcome are on record
            _record_check(cfg, reason, why)
        return RetrainResult(False, why)
    ws = Workspace.from_config(cfg)
    base = original_version(ws, cfg.name)
    schema = schema_of(base)
    base_rows = base.read_frame()
    frame, schema, gate_frame = training_set(cfg, base_rows, schema, say)
    entity = cfg.data.entity if cfg.data.entity in schema else None
    # Staged in the workspace, so Ray Data's tasks on any node can read it.
    staged = ws.root / "staging" / f"retrain-{uuid.uuid4().hex[:8]}.parquet"
    staged.write_table(pa.Table.from_pandas(frame, preserve_index=False))
    split = cfg.data.split.model_copy(update={"method": cfg.retraining.split_method})
    data = cfg.data.model_copy(update={"source": staged.uri, "format": "parquet", "schema_": schema, "split": split,
                                       "entity": entity})
    rcfg = cfg.model_copy(update={"data": data})
    rcfg.config_path = cfg.config_path
    # The staged file goes away; the source that lasts is the original's, with the version it was built from.
    lineage = {"source": base.manifest["source"], "retrain_base": base.version, "rows_original": len(base_rows)}
    try:
        v = validate_dataset(rcfg, lineage=lineage)
    finally:
        staged.unlink()
    say(f"retrain: data version {v.dataset.version} ({v.rows_valid} rows, parent {base.version})")
    tags = {"forge.retrain.trigger": why, "forge.retrain.parent_data_version": base.version,
            **({"forge.retrain.reason": reason} if reason else {})}
    if drift:
        tags["forge.retrain.drift_report"] = drift.report_path
    out = train(rcfg, v.dataset.version, say=say, extra_tags=tags, gate_frame=gate_frame)
    with mlflow.start_run(run_id=out.run_id):
        mlflow.set_tags({"forge.retrain.challenger": out.model_version,
                         "forge.retrain.champion_before": str(out.gate.champion_version),
                         "forge.retrain.outcome": "promoted" if out.promoted else "kept the champion (gate)"})
        mlflow.log_dict({"trigger": why, "drift": drift.to_dict() if drift else None, "gate": out.gate.to_dict()},
                        "retrain/decision.json")
    return RetrainResult(True, why, out.model_version, out.promoted, out.gate, v.dataset.version, out.run_id, drift)


def _record_check(cfg: ForgeConfig, reason: str, why: str) -> None:
    """A check that did not retrain, as a short MLflow run of the project: who asked, and why nothing ran."""
    from forge.training import tracking

    with mlflow.start_run(experiment_id=tracking.setup(cfg), run_name="retrain-check"):
        mlflow.set_tags({"forge.retrain.reason": reason, "forge.retrain.trigger": why,
                         "forge.retrain.outcome": "not triggered"})
