"""ModelTrainer: features, then a Ray Tune search across model families, then the final model.

Trials log to MLflow through `MLflowLoggerCallback` (from the Tune driver, so
SQLite sees one writer) as children of the pipeline's parent run. The MLP
family runs a TorchTrainer inside its trial; its trial reserves no CPU because
the Train worker takes one, so two concurrent trials never wait on each other.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import ray
from ray import tune

from forge.config import ColumnSchema, ForgeConfig
from forge.data.health import infer_task
from forge.features.engineering import FeatureSpec, FeatureTransform, infer_spec
from forge.features.split import split_frame
from forge.storage import Location, as_location, ray_storage
from forge.training.evaluation import default_metric, mode, score
from forge.training.mlp import fit_mlp, load_mlp_checkpoint
from forge.training.models import ITERATIVE, build_sklearn, default_families, search_space, suggest


@dataclass
class TrainingData:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    spec: FeatureSpec
    transform: FeatureTransform
    task: str
    metric: str
    target: str
    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    split_method: str


def prepare(cfg: ForgeConfig, frame: pd.DataFrame, schema: dict[str, ColumnSchema],
            exclude: list[str] = ()) -> TrainingData:
    """Split, fit the feature transform on the training split (Ray Data), and build matrices.

    Args:
        exclude: columns validation found constant or ID-like (kept only when `features.keep` names them).
    """
    target = cfg.data.target
    task = cfg.training.task or infer_task(frame[target], schema.get(target))
    sp = cfg.data.split
    splits = split_frame(frame, target, sp.val_size, cfg.training.test_size or sp.test_size, cfg.training.seed,
                         timestamp=cfg.data.timestamp, stratify=task == "classification", method=sp.method)
    spec = infer_spec(cfg, schema, exclude)
    transform = FeatureTransform(spec).fit(splits.train)  # in memory already: one in-process pass
    X, y = {}, {}
    for part in ("train", "val", "test"):
        df = getattr(splits, part)
        X[part] = transform.transform_batch(df)
        y[part] = df[target].to_numpy()
    n_classes = len(np.unique(y["train"])) if task == "classification" else 0
    metric = cfg.training.metric or default_metric(task, n_classes)
    return TrainingData(splits.train, splits.val, splits.test, spec, transform, task, metric, target, X, y,
                        splits.method)


def _classes(y: np.ndarray) -> np.ndarray:
    return np.unique(y)


def _trial(config: dict, data: dict) -> None:
    """One Tune trial: fit a family's model and report its validation metric."""
    family, task, metric = config["family"], data["task"], data["metric"]
    params = {k: v for k, v in config.items() if k != "family"}
    X, y, Xv, yv = data["X_train"], data["y_train"], data["X_val"], data["y_val"]
    if family == "mlp":
        from ray.tune.integration.ray_train import TuneReportCallback

        fit_mlp(X, y, Xv, yv, params, task=task, metric=metric, max_epochs=data["max_epochs"],
                storage=data["storage"], name=f"mlp-{tune.get_context().get_trial_id()}",
                use_gpu=data["use_gpu"], callbacks=[TuneReportCallback()], worker_cpus=data["trial_cpus"])
        return
    est = build_sklearn(family, task, params, data["seed"]).fit(X, y)
    proba = est.predict_proba(Xv) if task == "classification" else None
    tune.report({"val_metric": score(metric, yv, est.predict(Xv), proba, _classes(y)), "epoch": 0})


def _trial_resources(config: dict, cpus: float = 1.0) -> dict:
    # An MLP trial only drives a TorchTrainer whose worker takes the CPU; Tune rejects an empty
    # request, so it asks for a token of memory instead of a CPU the worker would then wait for.
    return {"cpu": 0, "memory": 1} if config.get("family") in ITERATIVE else {"cpu": cpus}


def _families(cfg: ForgeConfig, task: str) -> dict[str, dict]:
    models = cfg.training.models
    if models is None:
        return {f: search_space(f) for f in default_families(task)}
    if isinstance(models, list):
        return {f: search_space(f) for f in models}
    return {f: search_space(f, o or {}) for f, o in models.items()}


class _JointSpace:
    """Optuna define-by-run space: pick a family, then only that family's parameters.

    A class, not a closure, because Tune pickles the searcher into its experiment state.
    """

    def __init__(self, spaces: dict[str, dict]):
        self.spaces = spaces

    def __call__(self, trial) -> dict:
        family = trial.suggest_categorical("family", list(self.spaces))
        fixed = {}
        for name, spec in self.spaces[family].items():
            if spec[0] == "fixed":  # OptunaSearch takes constants from the returned dict, not from the trial
                fixed[name] = spec[1]
            else:
                suggest(trial, name, spec)
        return fixed


def search(cfg: ForgeConfig, td: TrainingData, storage: Location | Path, callbacks: list | None = None
           ) -> tune.ResultGrid:
    """Run the Tune search; returns the ResultGrid (its experiment folder stays readable).

    Args:
        storage: the Tune/Train storage (the workspace's tune/ folder, local or on an object store).
    """
    storage = as_location(storage)
    import optuna
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory": known noise
    t = cfg.training
    spaces = _families(cfg, td.task)

    space = _JointSpace(spaces)
    sampler = optuna.samplers.TPESampler(seed=t.seed) if t.search_alg == "optuna" else \
        optuna.samplers.RandomSampler(seed=t.seed)
    algo = ConcurrencyLimiter(OptunaSearch(space=space, metric="val_metric", mode=mode(td.metric), sampler=sampler),
                              max_concurrent=t.max_concurrent)
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=t.max_epochs, grace_period=2,
                              reduction_factor=3) if t.scheduler == "asha" else FIFOScheduler()
    use_gpu = bool(t.use_gpu) if t.use_gpu is not None else ray.cluster_resources().get("GPU", 0) > 0
    data = {"X_train": td.X["train"], "y_train": td.y["train"], "X_val": td.X["val"], "y_val": td.y["val"],
            "task": td.task, "metric": td.metric, "seed": t.seed, "max_epochs": t.max_epochs,
            "storage": storage / "train", "use_gpu": use_gpu, "trial_cpus": t.trial_cpus}
    trainable = tune.with_resources(
        tune.with_parameters(_trial, data=data),
        functools.partial(_trial_resources, cpus=t.trial_cpus),
    )
    # Reusing trial actors saves ~1.5 s a trial, but an actor whose TorchTrainer trial ASHA stopped cannot be
    # reset: Tune then errors the next trial and waits forever on the stopped one (a hang seen on 2 CPUs).
    reuse = not (t.scheduler == "asha" and any(f in ITERATIVE for f in spaces))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric="val_metric", mode=mode(td.metric), search_alg=algo,
                                    scheduler=scheduler, num_samples=t.num_samples, reuse_actors=reuse),
        # A trial whose node dies is retried elsewhere from its last checkpoint (or from scratch), not lost.
        run_config=tune.RunConfig(name=f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}", **ray_storage(storage),
                                  callbacks=callbacks or [], verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=t.max_failures)),
    )
    return tuner.fit()


def fit_best(td: TrainingData, best: tune.Result, seed: int, fs=None):
    """The best trial's model: sklearn families are refit on train+val; the MLP comes from its checkpoint
    (on fs, the Tune storage's filesystem)."""
    config = dict(best.config)
    family = config.pop("family")
    if family == "mlp":
        path = best.metrics.get("checkpoint_path")
        y = td.y["train"]
        if td.task == "classification":
            return family, config, load_mlp_checkpoint(path, td.task, _classes(y).tolist(), fs=fs)
        return family, config, load_mlp_checkpoint(path, td.task, [], float(np.mean(y)), float(np.std(y) or 1.0),
                                                   fs=fs)
    X = np.vstack([td.X["train"], td.X["val"]])
    y = np.concatenate([td.y["train"], td.y["val"]])
    return family, config, build_sklearn(family, td.task, config, seed).fit(X, y)


__all__ = ["TrainingData", "prepare", "search", "fit_best", "fit_mlp"]
