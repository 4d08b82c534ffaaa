"""Forge from Python, with the public API only: validate, engineer features, run the pipeline, use the champion.

    python examples/python_api.py path/to/forge.yaml

(`make demo` writes examples/churn/data/churn.csv, so `python examples/python_api.py examples/churn/forge.yaml`
works after it.)
"""

from __future__ import annotations

import sys

from forge import DataValidator, DriftMonitor, ExperimentTracker, FeatureEngineer, Pipeline, load_config


def main(config: str = "examples/churn/forge.yaml") -> dict:
    cfg = load_config(config)

    # 1. Validate: every bad row quarantined with its reason; the valid rows become a content-addressed version.
    result = DataValidator(cfg).validate()
    print(f"data version {result.dataset.version}: {result.rows_valid}/{result.rows_in} rows valid")

    # 2. Features: fitted once, the same transform offline and online.
    frame = result.dataset.read_frame()
    features = FeatureEngineer(cfg, result.schema, result.excluded_features).fit(frame)
    matrix = features.transform(frame.head(5))
    print(f"{matrix.shape[1]} features, e.g. {features.feature_names[:3]}")

    # 3. The whole pipeline: search, evaluate against a trivial baseline, register, gate.
    out = Pipeline(cfg).run(say=lambda line: print(f"  {line}"))
    print(f"model v{out['model_version']}: {out['metric']['name']} {out['metric']['value']:.3f} "
          f"(trivial model {out['baseline_metric']:.3f}), promoted: {out['promoted']}")

    # 4. The champion, loaded from the registry, and drift of a data set against its training reference.
    tracker = ExperimentTracker(cfg)
    predictions, _ = tracker.load_model("champion").predict_raw(frame.head(5))
    drift = DriftMonitor(cfg).check(current=str(result.dataset.snapshot))
    print(f"champion v{tracker.version('champion')} predicts {list(predictions)}; "
          f"drift share of the training data itself: {drift.drift_share:.2f}")
    return {"validation": result.summary(), "pipeline": out, "drift_share": drift.drift_share,
            "n_features": int(matrix.shape[1])}


if __name__ == "__main__":
    main(*sys.argv[1:])
