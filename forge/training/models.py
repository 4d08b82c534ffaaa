"""Model families by task, their default search spaces, and how each one is built and fit."""

from __future__ import annotations

from typing import Any

import numpy as np

from forge.errors import UsageError

CLASSIFICATION = ("logistic_regression", "random_forest", "hist_gradient_boosting", "mlp")
REGRESSION = ("linear_regression", "random_forest", "hist_gradient_boosting", "mlp")
ITERATIVE = ("mlp",)


def default_families(task: str) -> list[str]:
    return list(CLASSIFICATION if task == "classification" else REGRESSION)


SPACES: dict[str, dict[str, tuple]] = {
    "logistic_regression": {"C": ("log", 1e-3, 1e2)},
    "linear_regression": {"alpha": ("log", 1e-4, 1e2)},
    "random_forest": {"n_estimators": ("int", 50, 200), "max_depth": ("int", 3, 16), "min_samples_leaf": ("int", 1, 10)},
    "hist_gradient_boosting": {"learning_rate": ("log", 0.02, 0.3), "max_iter": ("int", 50, 250),
                               "max_leaf_nodes": ("int", 8, 64)},
    "mlp": {"hidden": ("choice", [16, 32, 64]), "layers": ("choice", [1, 2]), "lr": ("log", 1e-3, 3e-2),
            "batch_size": ("choice", [64, 128]), "weight_decay": ("log", 1e-6, 1e-3)},
}


def search_space(family: str, overrides: dict[str, Any] | None = None) -> dict[str, tuple]:
    """A family's space: {param: ("log"|"float"|"int", lo, hi) | ("choice", values) | ("fixed", value)}.

    Overrides from training.models: a scalar fixes a value, [lo, hi] narrows a range, any other list is a choice.
    """
    if family not in SPACES:
        raise UsageError(f"training.models: unknown model family {family!r} (known: {', '.join(SPACES)})")
    space = dict(SPACES[family])
    for key, val in (overrides or {}).items():
        if key not in space:
            raise UsageError(f"training.models.{family}.{key}: unknown parameter (known: {', '.join(space)})")
        kind = space[key][0]
        if isinstance(val, list) and len(val) == 2 and kind in ("log", "int", "float") and \
                all(isinstance(v, (int, float)) for v in val):
            space[key] = (kind, *val)
        elif isinstance(val, list):
            space[key] = ("choice", val)
        else:
            space[key] = ("fixed", val)
    return space


def suggest(trial, name: str, spec: tuple):
    """Ask an Optuna trial for one value of a space entry."""
    kind = spec[0]
    if kind == "log":
        return trial.suggest_float(name, spec[1], spec[2], log=True)
    if kind == "float":
        return trial.suggest_float(name, spec[1], spec[2])
    if kind == "int":
        return trial.suggest_int(name, spec[1], spec[2])
    if kind == "choice":
        return trial.suggest_categorical(name, spec[1])
    return spec[1]


def build_sklearn(family: str, task: str, params: dict[str, Any], seed: int):
    """A scikit-learn estimator for a non-iterative family."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    cls = task == "classification"
    if family == "logistic_regression":
        return LogisticRegression(C=params["C"], max_iter=2000)
    if family == "linear_regression":
        return Ridge(alpha=params["alpha"])
    if family == "random_forest":
        kw = {k: int(params[k]) for k in ("n_estimators", "max_depth", "min_samples_leaf")}
        # n_jobs=1: one CPU per trial is what Tune reserved.
        return (RandomForestClassifier if cls else RandomForestRegressor)(**kw, random_state=seed, n_jobs=1)
    if family == "hist_gradient_boosting":
        return (HistGradientBoostingClassifier if cls else HistGradientBoostingRegressor)(
            learning_rate=params["learning_rate"], max_iter=int(params["max_iter"]),
            max_leaf_nodes=int(params["max_leaf_nodes"]), random_state=seed,
        )
    raise ValueError(f"not a scikit-learn family: {family}")


class TorchMLPModel:
    """A fitted MLP behind the scikit-learn predict / predict_proba interface, for packaging."""

    def __init__(self, module, task: str, classes: np.ndarray | None, y_mean: float = 0.0, y_std: float = 1.0):
        self.module = module.cpu().eval()
        self.task = task
        self.classes_ = classes
        self.y_mean, self.y_std = y_mean, y_std

    def _forward(self, X: np.ndarray):
        import torch

        with torch.no_grad():
            return self.module(torch.as_tensor(np.asarray(X, dtype=np.float32)))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        import torch

        return torch.softmax(self._forward(X), dim=1).numpy().astype("float64")

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        return self._forward(X).numpy().ravel().astype("float64") * self.y_std + self.y_mean


def make_mlp(n_in: int, n_out: int, hidden: int, layers: int):
    import torch.nn as nn

    mods: list = []
    width = n_in
    for _ in range(int(layers)):
        mods += [nn.Linear(width, int(hidden)), nn.ReLU()]
        width = int(hidden)
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)
