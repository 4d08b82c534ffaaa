"""forge/training/trainer.py: the Tune search early-stops weak MLP trials with ASHA."""

import pytest

from forge.config import ForgeConfig

pytestmark = pytest.mark.integration


def test_asha_stops_weak_trials_early(ray_session, tmp_path):
    import ray

    from forge.data import synthetic
    from forge.features.engineering import FeatureSpec, FeatureTransform
    from forge.training.trainer import TrainingData, search

    df = synthetic.wide(3000, 10, seed=4)
    num, cat = [c for c in df if c.startswith("x")], [c for c in df if c.startswith("c")]
    parts = {"train": df.iloc[:2000], "val": df.iloc[2000:2500], "test": df.iloc[2500:]}
    ft = FeatureTransform(FeatureSpec(num, cat)).fit(ray.data.from_pandas(parts["train"]))
    td = TrainingData(parts["train"], parts["val"], parts["test"], ft.spec, ft, "classification", "roc_auc",
                      "target", {k: ft.transform_batch(v) for k, v in parts.items()},
                      {k: v["target"].to_numpy() for k, v in parts.items()}, "random")
    cfg = ForgeConfig.model_validate({"name": "asha", "data": {"source": "x.csv", "target": "target"},
                                      "training": {"models": {"mlp": {"lr": [1e-4, 3e-2]}}, "num_samples": 6,
                                                   "max_epochs": 9, "scheduler": "asha", "search_alg": "random",
                                                   # one at a time: the session's Serve replica holds part of
                                                   # a CPU, and two TorchTrainers short of a CPU each can stall
                                                   "max_concurrent": 1}})
    grid = search(cfg, td, tmp_path)
    iters = sorted(r.metrics["training_iteration"] for r in grid if r.metrics)
    assert len(iters) == 6 and max(iters) == 9
    assert min(iters) < 9, f"ASHA stopped no trial: {iters}"
