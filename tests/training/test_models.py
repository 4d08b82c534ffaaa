"""forge/training/models.py + mlp.py: every family learns; the MLP (a TorchTrainer) also survives a killed worker."""

import os
import signal
import threading
import time

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from forge.training.evaluation import score
from forge.training.mlp import fit_mlp
from forge.training.models import CLASSIFICATION, REGRESSION, SPACES, build_sklearn, search_space
from tests.conftest import state_address

X, y = make_classification(600, 8, n_informative=5, random_state=0)
Xr, yr = make_regression(600, 8, noise=5, random_state=0)


@pytest.mark.parametrize("family", [f for f in CLASSIFICATION if f != "mlp"])
def test_sklearn_classifiers_learn(family):
    params = {k: (v[1] if v[0] != "choice" else v[1][0]) for k, v in SPACES[family].items()}
    est = build_sklearn(family, "classification", params, 0).fit(X[:400], y[:400])
    assert score("roc_auc", y[400:], est.predict(X[400:]), est.predict_proba(X[400:]), np.array([0, 1])) > 0.8


@pytest.mark.parametrize("family", [f for f in REGRESSION if f != "mlp"])
def test_sklearn_regressors_learn(family):
    params = {k: (v[2] if v[0] != "choice" else v[1][0]) for k, v in SPACES[family].items()}
    est = build_sklearn(family, "regression", params, 0).fit(Xr[:400], yr[:400])
    assert score("r2", yr[400:], est.predict(Xr[400:]), None) > 0.5


def test_search_space_overrides_and_errors():
    s = search_space("random_forest", {"max_depth": [2, 4], "n_estimators": 10})
    assert s["max_depth"] == ("int", 2, 4) and s["n_estimators"] == ("fixed", 10)
    with pytest.raises(ValueError, match="training.models.random_forest.depth"):
        search_space("random_forest", {"depth": 3})
    with pytest.raises(ValueError, match="unknown model family"):
        search_space("xgboostish")


@pytest.mark.integration
def test_the_mlp_trains_with_torchtrainer_and_a_killed_worker_resumes_from_its_checkpoint(ray_session, tmp_path):
    """One TorchTrainer fit: it learns (validation and held-out ROC AUC above 0.8), and the worker SIGKILLed in the
    middle is replaced by one that resumes from the last checkpoint, not from scratch."""
    progress = tmp_path / "progress.txt"
    params = {"hidden": 32, "layers": 1, "lr": 0.01, "batch_size": 64, "weight_decay": 1e-5}
    box: dict = {}

    def train():
        box["out"] = fit_mlp(X[:400], y[:400], X[400:], y[400:], params, task="classification", metric="roc_auc",
                             max_epochs=6, storage=tmp_path, name="mlp-kill", epoch_sleep=1.0,
                             progress_file=str(progress), max_failures=2)

    t = threading.Thread(target=train, daemon=True)  # a failed assert must not leave it holding the exit
    t.start()
    deadline = time.time() + 120
    while time.time() < deadline and (not progress.exists() or len(progress.read_text().splitlines()) < 2):
        time.sleep(0.2)
    # Train V2's controller collects reports on a 2 s poll: let it register the first checkpoints.
    time.sleep(2.5)
    first_pid = int(progress.read_text().splitlines()[0].split()[1])
    workers = [a for a in _alive() if "TrainWorker" in a.class_name]
    assert any(a.pid == first_pid for a in workers)
    os.kill(first_pid, signal.SIGKILL)
    t.join(timeout=240)
    model, result = box["out"]
    lines = [tuple(map(int, line.split())) for line in progress.read_text().splitlines()]
    epochs = [e for e, _ in lines]
    pids = {p for _, p in lines}
    assert len(pids) >= 2, "a new worker process took over"
    assert epochs.count(0) == 1, f"resumed from a checkpoint, not from scratch: {epochs}"
    assert epochs[-1] == 5 and result.metrics["epoch"] == 5
    assert result.metrics["val_metric"] > 0.8
    assert score("roc_auc", y[400:], model.predict(X[400:]), model.predict_proba(X[400:]), np.array([0, 1])) > 0.8


def _alive():
    from ray.util.state import list_actors

    return list_actors(address=state_address(), filters=[("state", "=", "ALIVE")])
