"""forge/data/health.py: leakage, constant and ID-like columns named before training."""

import numpy as np
import pandas as pd
import pytest

from forge.data.health import excluded_columns, feature_warnings
from forge.data.validation import infer_schema
from forge.training.evaluation import baseline


def _warnings(df, target, skip=()):
    return feature_warnings(df, infer_schema(df, target), target, None, set(skip))


def test_two_partial_counts_that_add_up_to_the_target_are_leakage():
    rng = np.random.default_rng(0)
    n = 3000
    casual, registered = rng.integers(0, 50, n), rng.integers(0, 200, n)
    df = pd.DataFrame({"casual": casual, "registered": registered, "temp": rng.normal(15, 5, n),
                       "count": casual + registered})
    w = _warnings(df, "count")
    assert [x["columns"] for x in w if x["kind"] == "leakage"] == [["casual", "registered"]]
    assert "casual + registered" in w[0]["detail"]
    # Without the sum, nothing is named: the check does not cry wolf on honest features.
    df["count"] = casual + registered + rng.normal(0, 60, n)
    assert _warnings(df, "count") == []


def test_a_column_that_is_the_label_in_disguise_is_leakage_for_classification():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    df = pd.DataFrame({"refund_issued": np.where(y == 1, "yes", "no"), "x": rng.normal(size=2000), "churned": y})
    w = _warnings(df, "churned")
    assert [x["columns"] for x in w] == [["refund_issued"]] and "ROC AUC" in w[0]["detail"]


def test_constant_and_id_like_columns_are_named_and_left_out():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"id": [f"u{i}" for i in range(500)], "one": 1, "x": rng.normal(size=500),
                       "y": rng.integers(0, 2, 500)})
    w = _warnings(df, "y")
    assert {(x["kind"], x["columns"][0]) for x in w} == {("id_like", "id"), ("constant", "one")}
    assert excluded_columns(w) == ["id", "one"]
    assert _warnings(df, "y", skip=["id", "one"]) == []  # entity / dropped columns are not features


def test_baseline_is_the_trivial_model():
    assert baseline("roc_auc", [0, 0, 1], [0, 1, 1, 0], np.array([0, 1]))["value"] == 0.5
    b = baseline("rmse", [1.0, 3.0], [2.0, 4.0])
    assert b == {"name": "mean", "value": np.sqrt(2.0)}


def test_binary_auc_is_sklearns_roc_auc_ties_included():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from forge.data.health import binary_auc

    rng = np.random.default_rng(1)
    for n in (10, 500, 5000):
        positive = rng.random(n) < 0.3
        for x in (rng.normal(size=n), rng.integers(0, 4, n).astype(float), positive + rng.normal(0, 0.5, n)):
            assert binary_auc(positive, x) == pytest.approx(roc_auc_score(positive, x), abs=1e-12)
