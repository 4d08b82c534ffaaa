"""bench/tune: 16 trials of a cheap model on 50,000 rows: Forge's search and a bare Ray Tune against
multiprocessing.Pool(2) (the issue's baseline) and a plain loop; and ASHA vs no early stopping for the MLP (compute
spent vs best metric)."""

from __future__ import annotations

import multiprocessing
import sys
import time

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from bench._util import measure, table

X, y = make_classification(50_000, 20, n_informative=10, random_state=0)
CS = list(np.logspace(-3, 2, 16))


def fit(c: float) -> float:
    return LogisticRegression(C=c, max_iter=300).fit(X[:40_000], y[:40_000]).score(X[40_000:], y[40_000:])


def tune_fit(config: dict) -> None:
    from ray import tune

    tune.report({"acc": fit(config["C"])})


def main(epochs: int = 8) -> dict:
    from ray import tune

    from forge._runtime import init_ray

    results: dict = {}
    with measure(results, "plain loop"):
        [fit(c) for c in CS]
    with measure(results, "multiprocessing.Pool(2)"):
        with multiprocessing.Pool(2) as pool:
            pool.map(fit, CS)
    t0 = time.perf_counter()
    init_ray()
    init = time.perf_counter() - t0
    with measure(results, "Ray Tune (reuse_actors)"):
        tune.Tuner(tune_fit, param_space={"C": tune.grid_search(CS)},
                   tune_config=tune.TuneConfig(reuse_actors=True, metric="acc", mode="max"),
                   run_config=tune.RunConfig(verbose=0)).fit()
    results["Ray Tune (reuse_actors)"]["ray_init_s"] = round(init, 1)
    with measure(results, "forge search (Tune + Optuna)"):
        forge_search()
    results["forge search (Tune + Optuna)"]["ray_init_s"] = round(init, 1)
    print(table("bench/tune: 16 LogisticRegression fits, 50,000 rows", results, "multiprocessing.Pool(2)"))
    asha = mlp_asha(epochs)
    return {"fits": results, "asha": asha}


def forge_search() -> None:
    """Forge's own search over the same data: 16 logistic_regression trials (C log-uniform over the same range,
    scored by ROC AUC on the same split), as `forge train` runs them, MLflow tracking apart."""
    import tempfile
    from pathlib import Path

    from forge.config import ForgeConfig
    from forge.features.engineering import FeatureSpec
    from forge.training.trainer import TrainingData, search

    cfg = ForgeConfig.model_validate({"name": "b", "data": {"source": "x", "target": "target"}, "training": {
        "models": ["logistic_regression"], "num_samples": 16, "search_alg": "random", "scheduler": "none"}})
    parts = {"train": (X[:40_000], y[:40_000]), "val": (X[40_000:], y[40_000:]), "test": (X[40_000:], y[40_000:])}
    td = TrainingData(None, None, None, FeatureSpec([], []), None, "classification", "roc_auc", "target",
                      {k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}, "random")
    with tempfile.TemporaryDirectory() as d:
        grid = search(cfg, td, Path(d))
        assert len(grid) == 16 and not grid.errors, grid.errors


def mlp_asha(epochs: int) -> dict:
    """The same 6-trial MLP search with ASHA and without: epochs trained and best validation AUC."""
    import tempfile
    from pathlib import Path

    import pandas as pd

    from forge.config import ForgeConfig
    from forge.data import synthetic
    from forge.features.engineering import FeatureSpec, FeatureTransform
    from forge.training.trainer import TrainingData, search

    df = synthetic.wide(20_000, 20, seed=3)
    num = [c for c in df if c.startswith("x")]
    cat = [c for c in df if c.startswith("c")]
    import ray

    ft = FeatureTransform(FeatureSpec(num, cat)).fit(ray.data.from_pandas(df.iloc[:14000]))
    parts = {"train": df.iloc[:14000], "val": df.iloc[14000:17000], "test": df.iloc[17000:]}
    td = TrainingData(parts["train"], parts["val"], parts["test"], ft.spec, ft, "classification", "roc_auc",
                      "target", {k: ft.transform_batch(v) for k, v in parts.items()},
                      {k: v["target"].to_numpy() for k, v in parts.items()}, "random")
    out = {}
    for sched in ("asha", "none"):
        cfg = ForgeConfig.model_validate({"name": "b", "data": {"source": "x", "target": "target"}, "training": {
            "models": ["mlp"], "num_samples": 6, "max_epochs": epochs, "scheduler": sched, "search_alg": "random"}})
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            grid = search(cfg, td, Path(d))
            frame = pd.DataFrame([{"iters": r.metrics.get("training_iteration", 0),
                                   "best": r.metrics_dataframe["val_metric"].max()} for r in grid])
        out[sched] = {"wall_s": round(time.perf_counter() - t0, 1), "epochs_trained": int(frame["iters"].sum()),
                      "best_val_auc": round(float(frame["best"].max()), 4)}
    a, n = out["asha"], out["none"]
    print(f"\n== bench/tune: MLP, 6 trials x {epochs} epochs ==\n  ASHA: {a}\n  none: {n}\n"
          f"  ASHA spent {a['epochs_trained'] / n['epochs_trained']:.2f}x the epochs for "
          f"{a['best_val_auc'] - n['best_val_auc']:+.4f} AUC")
    return out


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
