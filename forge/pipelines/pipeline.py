"""The pipeline end to end: validate -> features -> search -> evaluate -> register -> gate."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import mlflow
import numpy as np
import pandas as pd
import ray

from forge._runtime import silent
from forge.config import ColumnSchema, ForgeConfig
from forge.data.ingest import ValidationResult, validate_dataset
from forge.data.validation import report_lines
from forge.data.versioning import DatasetVersion, get_version
from forge.errors import ForgeError
from forge.features.bins import Bins
from forge.features.statistics import compute_statistics, save_statistics
from forge.registry import registry as reg
from forge.registry.client import Registry
from forge.training import evaluation, tracking
from forge.training.packaging import ForgeModel
from forge.training.trainer import fit_best, prepare, search
from forge.workspace import Workspace, tracking_uri

Say = Callable[[str], None]


def schema_of(dv: DatasetVersion) -> dict[str, ColumnSchema]:
    return {k: ColumnSchema(**v) for k, v in dv.manifest["schema"].items()}


@dataclass
class TrainResult:
    """What one training run produced: the registered version, its metric against the baseline, the gate."""

    run_id: str
    model_name: str
    model_version: str
    metric: dict
    baseline_metric: float
    split: dict
    promoted: bool
    gate: reg.GateResult
    family: str
    data_version: str
    trials: int
    failed_trials: int

    def to_dict(self) -> dict:
        """The `forge train --json` object."""
        return {**asdict(self), "gate": self.gate.to_dict()}


def train(cfg: ForgeConfig, data_version: str | None = None, frame: pd.DataFrame | None = None,
          say: Say = silent, extra_tags: dict | None = None, gate_frame: pd.DataFrame | None = None) -> TrainResult:
    """Features + search + evaluate + register + gate for a validated data version.

    Args:
        frame: rows to train on instead of the version's snapshot.
        gate_frame: rows the gate judges challenger and champion on (default: the test split).
    """
    ws = Workspace.from_config(cfg)
    dv = get_version(ws, cfg.name, data_version)
    schema = schema_of(dv)
    frame = dv.read_frame() if frame is None else frame
    say(f"features: splitting {len(frame)} rows and fitting the transform on Ray Data")
    td = prepare(cfg, frame, schema, dv.manifest.get("excluded_features", []))
    say(f"split: {td.split_method} ({len(td.train)} train, {len(td.val)} validation, {len(td.test)} test rows)"
        + ("" if td.split_method == "time" else "; set data.timestamp for a split by time"))
    raw_numeric = [c for c in td.spec.numeric if c not in td.spec.derived]
    stats, reference = compute_statistics(ray.data.from_pandas(td.train), raw_numeric, td.spec.categorical,
                                          cfg.monitoring.drift.reference_rows, cfg.training.seed)
    _write_features(cfg, ws, frame, td.spec.inputs, dv.version, say)
    bins = Bins.fit(td.train, raw_numeric, td.spec.categorical)  # every training row, for fast drift
    stats_paths = save_statistics(dv.path / "stats", stats, reference, bins)
    exp_id = tracking.setup(cfg)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{cfg.name}-{dv.version}") as parent:
        run_id = parent.info.run_id
        _log_inputs(cfg, ws, dv, td, stats_paths, extra_tags or {})
        results, failed, best = _search(cfg, ws, td, run_id, say)
        family, params, estimator = fit_best(td, best, cfg.training.seed, fs=ws.tune().fs)
        say(f"best: {family} {json.dumps(params, default=str)} val {td.metric}={best.metrics['val_metric']:.4f}")
        model = ForgeModel(td.transform, estimator, td.task, td.spec.inputs,
                           {c: schema[c].model_dump() for c in td.spec.inputs})
        report = _evaluate(cfg, model, td, ws, run_id)
        value = report["metrics"][td.metric]
        say(f"test: {td.metric}={value:.4f} against {report['baseline']['value']:.4f} "
            f"for the trivial model ({report['baseline']['name']})")
        mlflow.log_params({"family": family, **params})
        mlflow.log_metrics({**{f"test_{k}": v for k, v in report["metrics"].items()},
                            f"baseline_{td.metric}": report["baseline"]["value"],
                            "val_metric": float(best.metrics["val_metric"])})
        registry = Registry.of(cfg)
        version = registry.register(model, td.train, tags={
            "forge.data_version": dv.version, "forge.metric": f"{td.metric}={value:.4f}", "forge.family": family,
            "forge.validation_report": dv.manifest["validation_report"],
            "forge.manifest": (dv.path / "manifest.json").uri, "forge.stats": (dv.path / "stats").uri})
        judged = gate_frame if gate_frame is not None and len(gate_frame) else td.test
        result = _judge(cfg, registry, model, judged, td.metric, version, say)
    return TrainResult(run_id, cfg.name, version, {"name": td.metric, "value": value}, report["baseline"]["value"],
                       report["split"], result.passed, result, family, dv.version, len(results), failed)


def _log_inputs(cfg: ForgeConfig, ws: Workspace, dv: DatasetVersion, td, stats_paths, extra_tags: dict) -> None:
    """Tags, dataset inputs and the artifacts drift and lineage read back: validation report, statistics."""
    mlflow.set_tags({**tracking.code_tags(cfg), "forge.data_version": dv.version, "forge.task": td.task,
                     "forge.split": td.split_method, "forge.metric_name": td.metric, **extra_tags})
    tracking.log_dataset_input(td.train, dv.manifest["source"], cfg.data.target, cfg.name, dv.version, "training")
    tracking.log_dataset_input(td.test, dv.manifest["source"], cfg.data.target, cfg.name, dv.version, "test")
    tracking.log_artifact(ws.reports() / f"validation-{cfg.name}-{dv.version}.json", "validation")
    for path in stats_paths:
        tracking.log_artifact(path, "features")


def _search(cfg: ForgeConfig, ws: Workspace, td, run_id: str, say: Say):
    """The Tune search, each trial a child run of `run_id`; returns (results, failed trials, best result)."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    callback = MLflowLoggerCallback(tracking_uri=tracking_uri(cfg), experiment_name=cfg.name,
                                    tags={"mlflow.parentRunId": run_id}, save_artifact=False)
    say(f"search: {cfg.training.num_samples} trials, {td.metric} ({evaluation.mode(td.metric)}), "
        f"{cfg.training.max_concurrent} at a time")
    results = search(cfg, td, ws.tune(), callbacks=[callback])
    errors = [r.error for r in results if r.error]
    if not [r for r in results if not r.error and r.metrics and "val_metric" in r.metrics]:
        raise ForgeError(f"every trial failed; first error: {errors[0] if errors else 'no results'}")
    best = results.get_best_result(metric="val_metric", mode=evaluation.mode(td.metric), filter_nan_and_inf=True)
    table_path = ws.reports() / f"tune-{cfg.name}-{run_id}.csv"
    table_path.write_text(results.get_dataframe().to_csv(index=False))
    tracking.log_artifact(table_path, "tune")
    mlflow.set_tag("forge.tune_experiment", str(results.experiment_path))
    return results, len(errors), best


def _judge(cfg: ForgeConfig, registry: Registry, model: ForgeModel, judged: pd.DataFrame, metric: str,
           version: str, say: Say) -> reg.GateResult:
    """Challenger against the current champion on the same rows; promote or mark as challenger."""
    champ_version = registry.version(reg.CHAMPION)
    champion = registry.load(champ_version) if champ_version else None
    result = reg.gate(cfg, model, champion, judged, metric, champ_version)
    if result.passed:
        registry.promote(version)
    else:
        registry.mark_challenger(version)
    mlflow.set_tags({"forge.gate.passed": str(result.passed), "forge.gate.reason": result.reason,
                     "forge.model_version": version})
    say(f"gate: {'PASS' if result.passed else 'FAIL'} ({result.reason}); version {version} is "
        f"{'@champion' if result.passed else '@challenger'}")
    return result


def _write_features(cfg: ForgeConfig, ws: Workspace, frame: pd.DataFrame, inputs: list[str], version: str,
                    say: Say) -> None:
    """The raw features of this data version, keyed by entity and event time, for point-in-time and online use."""
    ent, ts = cfg.data.entity, cfg.data.timestamp
    if not (cfg.features.store and ent and ts):
        return
    from forge.features.store import FeatureStore

    cols = [ent, ts, *[c for c in inputs if c not in (ent, ts)]]
    FeatureStore.of(cfg).write_table(cfg.name, frame[cols], ent, ts, source_version=version)
    say(f"features: wrote table {cfg.name!r} ({len(frame)} rows) to the offline store")


def _evaluate(cfg: ForgeConfig, model: ForgeModel, td, ws: Workspace, run_id: str) -> dict:
    pred, proba = model.predict_raw(td.test)
    slices = td.test[cfg.training.slice_column] if cfg.training.slice_column else None
    classes = np.asarray(model.classes) if model.classes is not None else None
    report = evaluation.evaluate(td.task, td.y["test"], pred, proba, classes, slices)
    report["baseline"] = evaluation.baseline(td.metric, td.y["train"], td.y["test"], classes)
    report["split"] = {"method": td.split_method, "train": len(td.train), "val": len(td.val), "test": len(td.test)}
    base = f"evaluation-{cfg.name}-{run_id}"
    (ws.reports() / f"{base}.json").write_text(json.dumps(report, indent=2, default=str))
    (ws.reports() / f"{base}.html").write_text(evaluation.to_html(report, f"{cfg.name} evaluation ({run_id})"))
    tracking.log_artifact(ws.reports() / f"{base}.json", "evaluation")
    tracking.log_artifact(ws.reports() / f"{base}.html", "evaluation")
    return report


def run(cfg: ForgeConfig, say: Say = silent, progress=None,
        before_training: Callable[[ValidationResult], None] | None = None) -> dict:
    """validate then train: the whole pipeline.

    Args:
        progress: called with the number of rows read so far while validating, then with None.
        before_training: sees the validation result before training starts (and may stop the run by raising).
    """
    say(f"validate: reading {cfg.data.source}")
    v = validate_dataset(cfg, progress=progress)
    if progress:
        progress(None)
    say(f"validate: data version {v.dataset.version}{'' if v.created else ' (unchanged)'}")
    for line in report_lines(v.report):
        say(line)
    if before_training:
        before_training(v)
    return {**v.summary(), **train(cfg, v.dataset.version, say=say).to_dict()}
