"""The PyTorch MLP family, trained data-parallel with Ray Train's TorchTrainer (Train V2).

Workers stream their shard of a Ray Dataset, report a validation metric every
epoch with a checkpoint, and resume from the last checkpoint after a failure.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import ray
import torch

from forge.storage import Location, as_location, ray_storage
from forge.training.evaluation import score
from forge.training.models import TorchMLPModel, make_mlp

CKPT = "mlp.pt"


def _train_loop(config: dict) -> None:
    import ray.train
    import ray.train.torch

    task, metric, classes = config["task"], config["metric"], config["classes"]
    X_val, y_val = config["val"]
    n_out = len(classes) if task == "classification" else 1
    model = make_mlp(X_val.shape[1], n_out, config["hidden"], config["layers"])
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    start = 0
    ckpt = ray.train.get_checkpoint()
    if ckpt:  # resume after a worker failure
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / CKPT, weights_only=True)  # tensors and plain values only: no code runs
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"] + 1
    model = ray.train.torch.prepare_model(model)
    loss_fn = torch.nn.CrossEntropyLoss() if task == "classification" else torch.nn.MSELoss()
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(start, config["max_epochs"]):
        model.train()
        for batch in shard.iter_torch_batches(batch_size=int(config["batch_size"]),
                                              dtypes={"features": torch.float32, "label": torch.float32}):
            out = model(batch["features"])
            y = batch["label"].long() if task == "classification" else batch["label"].unsqueeze(1)
            loss = loss_fn(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if config.get("epoch_sleep"):  # tests: time to kill a worker mid-run
            time.sleep(config["epoch_sleep"])
        if config.get("progress_file"):  # tests: which process ran which epoch
            with open(config["progress_file"], "a") as f:
                f.write(f"{epoch} {os.getpid()}\n")
        raw = model.module if hasattr(model, "module") else model
        fitted = TorchMLPModel(_copy(raw), task, np.asarray(classes) if task == "classification" else None,
                               config["y_mean"], config["y_std"])
        val = _val_score(fitted, metric, X_val, y_val, task, classes)
        with tempfile.TemporaryDirectory() as d:
            ckpt = None
            if ray.train.get_context().get_world_rank() == 0:
                torch.save({"model": raw.state_dict(), "opt": opt.state_dict(), "epoch": epoch,
                            "arch": {k: int(config[k]) for k in ("hidden", "layers")}, "n_in": int(X_val.shape[1]),
                            "n_out": int(n_out)}, Path(d) / CKPT)
                ckpt = ray.train.Checkpoint.from_directory(d)
            ray.train.report({"val_metric": val, "epoch": epoch}, checkpoint=ckpt)


def _copy(module):
    import copy

    return copy.deepcopy(module)


def _val_score(fitted: TorchMLPModel, metric, X, y, task, classes) -> float:
    if task == "classification":
        proba = fitted.predict_proba(X)
        return score(metric, y, np.asarray(classes)[proba.argmax(1)], proba, np.asarray(classes))
    return score(metric, y, fitted.predict(X), None)


def fit_mlp(
    X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, params: dict, *, task: str, metric: str,
    max_epochs: int, storage: Location | Path, name: str, use_gpu: bool = False, callbacks: list | None = None,
    max_failures: int = 2, num_workers: int = 1, epoch_sleep: float = 0.0, progress_file: str | None = None,
    worker_cpus: float = 1.0,
):
    """Train with TorchTrainer; returns (TorchMLPModel from the last checkpoint, ray.train.Result).

    Args:
        worker_cpus: CPUs each Train worker reserves (`training.trial_cpus` in a search).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    classes = np.unique(y).tolist() if task == "classification" else []
    if task == "classification":
        label = np.searchsorted(np.asarray(classes), y).astype("float32")
        y_mean, y_std = 0.0, 1.0
    else:
        y_mean, y_std = float(np.mean(y)), float(np.std(y) or 1.0)
        label = ((y - y_mean) / y_std).astype("float32")
    # Materialised with no pending operators: the Train workers may hold every CPU, and a lazy
    # Ray Data operator waiting for one would starve them (a deadlock on 2 cores).
    import pandas as pd

    ds = ray.data.from_pandas(pd.DataFrame({"features": list(X.astype("float32")), "label": label})).materialize()
    config = {**params, "task": task, "metric": metric, "classes": classes, "val": (X_val, y_val),
              "max_epochs": max_epochs, "y_mean": y_mean, "y_std": y_std, "epoch_sleep": epoch_sleep,
              "progress_file": progress_file}
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": worker_cpus}),
        datasets={"train": ds},
        run_config=RunConfig(
            name=name, callbacks=callbacks or [], **ray_storage(as_location(storage)),
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
    )
    result = trainer.fit()
    return load_mlp_checkpoint(result.checkpoint.path, task, classes, y_mean, y_std,
                               fs=result.checkpoint.filesystem), result


def load_mlp_checkpoint(path: str, task: str, classes, y_mean: float = 0.0, y_std: float = 1.0,
                        fs=None) -> TorchMLPModel:
    """The MLP of a checkpoint folder on fs (the local disk by default; an object store when Tune's storage is)."""
    import io

    blob = (Location(fs or pafs.LocalFileSystem(), str(path), "" if fs is None or isinstance(
        fs, pafs.LocalFileSystem) else "remote") / CKPT).read_bytes()
    state = torch.load(io.BytesIO(blob), weights_only=True)  # tensors and plain values only: no code runs
    module = make_mlp(state["n_in"], state["n_out"], state["arch"]["hidden"], state["arch"]["layers"])
    module.load_state_dict(state["model"])
    return TorchMLPModel(module, task, np.asarray(classes) if task == "classification" else None, y_mean, y_std)
