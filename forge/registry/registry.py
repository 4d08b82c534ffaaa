"""Model registry: register, aliases, the champion/challenger gate, promotion and lineage."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from forge.config import ForgeConfig
from forge.training.evaluation import mode, score

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"


@dataclass
class GateResult:
    passed: bool
    metric: str
    challenger: float
    champion: float | None
    champion_version: str | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def missing(e: MlflowException) -> bool:
    """No such model or alias: an answer. Anything else (401, 403, a server error) is raised: a refused request
    read as "no champion" made an app wait forever and `forge models list` print an empty registry."""
    return e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as e:
        if not missing(e):
            raise
        return None


def model_score(model, metric: str, df: pd.DataFrame, target: str) -> float:
    """A registered ForgeModel's metric on raw rows."""
    pred, proba = model.predict_raw(df)
    classes = model.classes
    import numpy as np

    y = df[target].to_numpy()
    return score(metric, y, pred, proba, np.asarray(classes) if classes is not None else None)


def gate(cfg: ForgeConfig, challenger, champion, test: pd.DataFrame, default_metric: str,
         champion_version: str | None) -> GateResult:
    """Compare challenger and champion on the same rows; the config's floor and margin decide."""
    g = cfg.registry.gate
    metric = g.metric or default_metric
    sign = 1 if mode(metric) == "max" else -1
    new = model_score(challenger, metric, test, cfg.data.target)
    if g.min is not None and sign * (new - g.min) < 0:
        return GateResult(False, metric, new, None, champion_version,
                          f"{metric}={new:.4f} does not reach registry.gate.min={g.min}")
    if champion is None:
        return GateResult(True, metric, new, None, None, "no champion yet")
    old = model_score(champion, metric, test, cfg.data.target)
    gain = sign * (new - old)
    if gain < g.min_improvement:
        return GateResult(False, metric, new, old, champion_version,
                          f"{metric} {new:.4f} vs champion {old:.4f}: improvement {gain:.4f} < {g.min_improvement}")
    return GateResult(True, metric, new, old, champion_version,
                      f"{metric} {new:.4f} vs champion {old:.4f}: improvement {gain:.4f} >= {g.min_improvement}")


def promote(client: MlflowClient, name: str, version: str) -> str | None:
    """Make `version` the champion; the old champion becomes @previous. Returns the old version."""
    old = alias_version(client, name, CHAMPION)
    if old is not None and old != str(version):
        client.set_registered_model_alias(name, PREVIOUS, old)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    if alias_version(client, name, CHALLENGER) == str(version):
        client.delete_registered_model_alias(name, CHALLENGER)
    return old


def mark_challenger(client: MlflowClient, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHALLENGER, str(version))


def list_versions(client: MlflowClient, name: str) -> list[dict]:
    # An MLflow server's search_model_versions leaves aliases empty (SQLite filled them): ask the model for them.
    by_version: dict[str, set] = {}
    try:
        registered = client.get_registered_model(name).aliases
    except MlflowException as e:
        if not missing(e):
            raise
        return []  # nothing registered yet
    for alias, version in registered.items():
        by_version.setdefault(str(version), set()).add(alias)
    out = []
    for mv in sorted(client.search_model_versions(f"name='{name}'"), key=lambda m: int(m.version)):
        aliases = sorted(set(mv.aliases) | by_version.get(str(mv.version), set()))
        out.append({"version": mv.version, "aliases": aliases, "run_id": mv.run_id,
                    "data_version": mv.tags.get("forge.data_version"), "metric": mv.tags.get("forge.metric"),
                    "created": mv.creation_timestamp})
    return out


def lineage(client: MlflowClient, name: str, version: str) -> dict:
    """model version -> run -> data version (dataset input) -> manifest source and parent."""
    mv = client.get_model_version(name, str(version))
    run = client.get_run(mv.run_id)
    inputs = [{"name": d.dataset.name, "digest": d.dataset.digest, "source": d.dataset.source,
               "context": [t.value for t in d.tags if t.key == "mlflow.data.context"]}
              for d in (run.inputs.dataset_inputs if run.inputs else [])]
    return {
        "model": {"name": name, "version": mv.version, "aliases": list(mv.aliases), "run_id": mv.run_id},
        "run": {"metrics": run.data.metrics, "params": run.data.params,
                "git_commit": run.data.tags.get("mlflow.source.git.commit")},
        "data": {"version": mv.tags.get("forge.data_version"), "inputs": inputs,
                 "validation_report": mv.tags.get("forge.validation_report"),
                 "manifest": mv.tags.get("forge.manifest")},
    }
