"""Tune experiment reports from MLflow: which searches ran, which trials, what ASHA stopped and when, how each
family did, and how the metric moved epoch by epoch.

Everything comes from the tracking server, not Ray's session folder: each search is a parent run (tag
`forge.tune_experiment`) and each trial a child run that Tune's MLflowLoggerCallback filled with the trial's
config as params and one `val_metric` per reported epoch. A trial of an iterative family that ended before
`training.max_epochs` without an error was stopped by ASHA after its last reported epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from forge.config import ForgeConfig
from forge.errors import NotFoundError
from forge.training.evaluation import mode
from forge.training.models import ITERATIVE


@dataclass
class Trial:
    run_id: str
    name: str
    family: str
    params: dict[str, str]
    status: str  # completed | stopped early by ASHA at epoch N | errored
    iterations: int
    wall_s: float | None
    val_metric: float | None
    curve: list[float] = field(default_factory=list)


@dataclass
class Search:
    run_id: str
    name: str
    started: str
    metric: str | None
    best: float | None
    winner: str | None
    n_trials: int
    trials: list[Trial] = field(default_factory=list)
    tune_folder: str | None = None  # Tune's experiment folder in the workspace: TensorBoard event files per trial

    def best_per_family(self, higher_is_better: bool) -> dict[str, Trial]:
        out: dict[str, Trial] = {}
        for t in self.trials:
            if t.val_metric is None:
                continue
            cur = out.get(t.family)
            if cur is None or (t.val_metric > cur.val_metric if higher_is_better else t.val_metric < cur.val_metric):
                out[t.family] = t
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def _client(cfg: ForgeConfig):
    from forge.training import tracking

    return tracking.client(cfg)


def _experiment_id(client, cfg: ForgeConfig) -> str:
    exp = client.get_experiment_by_name(cfg.name)
    if exp is None:
        raise NotFoundError(f"no experiment {cfg.name!r} in MLflow yet: run `forge train` first")
    return exp.experiment_id


def list_searches(cfg: ForgeConfig) -> list[Search]:
    """Every search of the project, newest first, with its trial count and best validation metric."""
    client = _client(cfg)
    exp = _experiment_id(client, cfg)
    parents = client.search_runs([exp], "tags.`forge.tune_experiment` LIKE '%'", order_by=["start_time DESC"])
    out = []
    for run in parents:
        children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
        out.append(Search(run.info.run_id, run.info.run_name, _iso(run.info.start_time), _metric_of(run),
                          run.data.metrics.get("val_metric"), run.data.params.get("family"), len(children)))
    return out


def show_search(cfg: ForgeConfig, run_id: str | None = None) -> Search:
    """One search (default: the newest) with every trial, its status, iterations, wall time and curve."""
    client = _client(cfg)
    exp = _experiment_id(client, cfg)
    if run_id is None:
        newest = client.search_runs([exp], "tags.`forge.tune_experiment` LIKE '%'", order_by=["start_time DESC"],
                                    max_results=1)
        if not newest:
            raise NotFoundError(f"no search of {cfg.name!r} in MLflow yet: run `forge train` first")
        run_id = newest[0].info.run_id
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        raise NotFoundError(f"no MLflow run {run_id!r}: `forge experiments list` shows the searches") from e
    if "forge.tune_experiment" not in run.data.tags:
        raise NotFoundError(f"run {run_id} is not a search (no forge.tune_experiment tag)")
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{run_id}'", order_by=["start_time ASC"])
    trials = [_trial(client, c, cfg.training.max_epochs) for c in children]
    return Search(run_id, run.info.run_name, _iso(run.info.start_time), _metric_of(run),
                  run.data.metrics.get("val_metric"), run.data.params.get("family"), len(trials), trials,
                  run.data.tags.get("forge.tune_experiment"))


def _trial(client, run, max_epochs: int) -> Trial:
    params = dict(run.data.params)
    family = params.pop("family", "?")
    curve = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "val_metric"), key=lambda m: m.step)]
    iterations = int(run.data.metrics.get("training_iteration", len(curve)))
    if run.info.status == "FAILED" or (not curve and run.info.status != "RUNNING"):
        status = "errored"
    elif family in ITERATIVE and iterations < max_epochs:
        status = f"stopped early by ASHA at epoch {iterations}"
    else:
        status = "completed"
    wall = run.data.metrics.get("time_total_s")
    return Trial(run.info.run_id, run.info.run_name, family, params, status, iterations, wall,
                 curve[-1] if curve else None, curve)


def _metric_of(run) -> str | None:
    return run.data.tags.get("forge.metric_name")


def _iso(ms: int | None) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp((ms or 0) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def higher_is_better(metric: str | None) -> bool:
    return metric is None or mode(metric) == "max"
