"""forge/features: no training/serving skew, split without leakage, statistics equal pandas'."""

import numpy as np
import pandas as pd
import pytest

from forge.config import ColumnSchema, ForgeConfig
from forge.data import synthetic
from forge.features.engineering import FeatureTransform, infer_spec
from forge.features.split import split_frame
from forge.features.statistics import compute_statistics

pytestmark = pytest.mark.integration

SCHEMA = {
    "usage_hours": ColumnSchema(type="float"), "monthly_spend": ColumnSchema(type="float"),
    "tenure_months": ColumnSchema(type="int"), "support_tickets": ColumnSchema(type="int"),
    "age": ColumnSchema(type="int"), "region": ColumnSchema(type="str"), "plan": ColumnSchema(type="str"),
    "discount": ColumnSchema(type="float"), "churned": ColumnSchema(type="int"),
    "customer_id": ColumnSchema(type="int"), "event_time": ColumnSchema(type="datetime"),
}


def _cfg(**features):
    return ForgeConfig.model_validate({"name": "f", "data": {"source": "x.csv", "target": "churned",
                                                             "timestamp": "event_time", "entity": "customer_id"},
                                       "features": features})


def test_spec_from_schema_and_config():
    spec = infer_spec(_cfg(drop=["age"], derived={"spend_per_hour": "monthly_spend / (usage_hours + 1)"}), SCHEMA)
    assert "age" not in spec.numeric and "customer_id" not in spec.numeric and "churned" not in spec.numeric
    assert spec.categorical == ["region", "plan"] and "spend_per_hour" in spec.numeric
    assert "spend_per_hour" not in spec.inputs


def test_batch_and_single_row_paths_agree_exactly(ray_session):
    import ray

    df = synthetic.generate(600, seed=5)
    spec = infer_spec(_cfg(derived={"spend_per_hour": "monthly_spend / (usage_hours + 1)"}), SCHEMA)
    ft = FeatureTransform(spec).fit(ray.data.from_pandas(df.iloc[:400]))
    serve_rows = df.iloc[400:].reset_index(drop=True)
    serve_rows.loc[0, "region"] = "never-seen"  # unknown categories are ignored, not errors
    batch = np.stack([r["features"] for r in ft.transform(ray.data.from_pandas(serve_rows)).take_all()])
    single = np.vstack([ft.transform_batch(serve_rows.iloc[[i]]) for i in range(len(serve_rows))])
    assert batch.shape == (200, len(ft.feature_names))
    np.testing.assert_array_equal(batch, single)
    region_cols = [i for i, n in enumerate(ft.feature_names) if n.startswith("region=")]
    assert batch[0, region_cols].sum() == 0


def test_numpy_apply_equals_rays_chain_transform(ray_session):
    """transform_batch applies the fitted Chain's statistics with numpy: it must equal Ray's own transform."""
    import ray

    df = synthetic.generate(800, seed=9, null_rate=0.1)
    spec = infer_spec(_cfg(derived={"spend_per_hour": "monthly_spend / (usage_hours + 1)"}), SCHEMA)
    ft = FeatureTransform(spec).fit(ray.data.from_pandas(df.iloc[:500]))
    rows = df.iloc[500:].reset_index(drop=True).astype({"age": object})
    rows.loc[0, "region"] = "never-seen"
    rows.loc[1, "plan"] = None
    rows.loc[2, "age"] = "not a number"  # unparseable -> imputed, in both paths
    rows.loc[3, "tenure_months"] = None
    assert rows.isna().any().any()
    np.testing.assert_array_equal(ft.transform_batch(rows), ft.chain_transform(rows))
    from forge.features.engineering import SMALL_FRAME

    big = pd.concat([rows] * (SMALL_FRAME // len(rows) + 1), ignore_index=True)  # the pandas path for categories
    assert len(big) > SMALL_FRAME >= len(rows)
    np.testing.assert_array_equal(ft.transform_batch(big), ft.chain_transform(big))
    for i in range(5):
        np.testing.assert_array_equal(ft.transform_batch(rows.iloc[[i]]), ft.chain_transform(rows.iloc[[i]]))


def test_served_rows_path_equals_the_frame_path_and_rays_chain():
    """transform_rows (a served request's JSON rows, no DataFrame) gives exactly what transform_batch gives for
    DataFrame.from_records of the same rows, and Ray's Chain: nulls, unknown categories, whole floats for ints,
    numbers in a text column, a missing key. A value only pandas can read, or a derived column, returns None
    (the caller falls back to the frame)."""
    import json

    df = synthetic.generate(300, seed=11, null_rate=0.1)
    spec = infer_spec(_cfg(), SCHEMA)
    ft = FeatureTransform(spec).fit(df.iloc[:200])
    rows = json.loads(df.iloc[200:].drop(columns=["event_time"]).to_json(orient="records"))
    rows[0]["region"] = "never-seen"
    rows[1]["plan"] = None
    rows[2]["age"] = 41.0
    rows[3]["region"] = 7
    rows[4]["tenure_months"] = True
    del rows[5]["discount"]
    frame = pd.DataFrame.from_records(rows, columns=spec.inputs)
    assert frame.isna().any().any()
    fast = ft.transform_rows(rows)
    np.testing.assert_array_equal(fast, ft.transform_batch(frame))
    np.testing.assert_array_equal(fast, ft.chain_transform(frame))
    for i in range(6):
        np.testing.assert_array_equal(ft.transform_rows(rows[i:i + 1]), ft.transform_batch(frame.iloc[[i]]))
    assert ft.transform_rows([{**rows[0], "age": "not a number"}]) is None
    derived = FeatureTransform(infer_spec(_cfg(derived={"d": "monthly_spend * 2"}), SCHEMA)).fit(df.iloc[:200])
    assert derived.transform_rows(rows) is None


@pytest.mark.parametrize("source", ["frame", "dataset"])
def test_one_pass_fit_equals_rays_chain_fit(ray_session, source):
    """The one-pass statistics (in process for a frame, merged over Ray Data blocks for a Dataset) are the ones
    Ray's multi-pass Chain.fit computes: same categories and fills, means and stds to rounding."""
    import ray

    df = synthetic.generate(3000, seed=4, null_rate=0.1).astype({"age": object})
    df.loc[7, "age"] = "not a number"
    df.loc[:40, "support_tickets"] = None  # a column with a run of nulls in the first block
    spec = infer_spec(_cfg(derived={"spend_per_hour": "monthly_spend / (usage_hours + 1)"}), SCHEMA)
    ray_fit = FeatureTransform(spec).fit_with_ray_chain(ray.data.from_pandas(df))
    data = df if source == "frame" else ray.data.from_pandas(df).repartition(5)  # five blocks to merge
    ours = FeatureTransform(spec).fit(data)
    assert ours.feature_names == ray_fit.feature_names
    for mine, theirs in zip(ours.chain.preprocessors, ray_fit.chain.preprocessors):
        assert mine.stats_.keys() == theirs.stats_.keys()
        for key, value in theirs.stats_.items():
            if isinstance(value, float):
                assert mine.stats_[key] == pytest.approx(value, rel=1e-12), key
            else:
                assert dict(mine.stats_[key]) == dict(value) if isinstance(value, dict) else mine.stats_[key] == value, key
    rows = synthetic.generate(300, seed=8, null_rate=0.1)
    np.testing.assert_allclose(ours.transform_batch(rows), ray_fit.transform_batch(rows), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(ours.transform_batch(rows), ours.chain_transform(rows))


def test_time_split_has_no_leakage():
    df = synthetic.generate(1000, seed=2)
    df.loc[df.index[500:520], "event_time"] = df["event_time"].iloc[500]  # equal timestamps at a boundary
    s = split_frame(df, "churned", 0.15, 0.2, 0, timestamp="event_time")
    assert s.method == "time"
    assert s.train["event_time"].max() < s.val["event_time"].min()
    assert s.val["event_time"].max() < s.test["event_time"].min()
    assert len(s.train) + len(s.val) + len(s.test) == 1000


def test_random_split_is_stratified():
    df = synthetic.generate(1000, seed=2)
    s = split_frame(df, "churned", 0.15, 0.2, 0, stratify=True, method="random")
    rate = df["churned"].mean()
    for part in (s.train, s.val, s.test):
        assert abs(part["churned"].mean() - rate) < 0.01


def test_statistics_match_pandas(ray_session):
    import ray

    df = synthetic.generate(800, seed=9)
    num, cat = ["usage_hours", "tenure_months"], ["region", "plan"]
    stats, sample = compute_statistics(ray.data.from_pandas(df).repartition(4), num, cat, reference_rows=10_000)
    for c in num:
        s = df[c]
        assert stats[c]["count"] == s.notna().sum() and stats[c]["nulls"] == s.isna().sum()
        assert stats[c]["mean"] == pytest.approx(s.mean(), rel=1e-12)
        assert stats[c]["std"] == pytest.approx(s.std(), rel=1e-9)
        assert stats[c]["min"] == s.min() and stats[c]["max"] == s.max()
        assert stats[c]["quantiles"]["0.5"] == pytest.approx(s.quantile(0.5))
    for c in cat:
        assert stats[c]["frequencies"] == df[c].value_counts().to_dict()
        assert stats[c]["nulls"] == df[c].isna().sum()
    assert len(sample) == 800


def test_pickled_transform_loads_without_ray_and_keeps_its_chain(tmp_path):
    """A fitted transform's pickle carries the Chain's statistics, not Ray's objects: a fresh process loads it
    and transforms without importing ray, and the Chain rebuilt from it still equals the numpy path."""
    import pickle
    import subprocess
    import sys

    df = synthetic.generate(800, seed=9, null_rate=0.1)
    ft = FeatureTransform(infer_spec(_cfg(), SCHEMA)).fit(df.iloc[:500])
    rows = df.iloc[500:].reset_index(drop=True)
    (tmp_path / "ft.pkl").write_bytes(pickle.dumps(ft))
    rows.to_pickle(tmp_path / "rows.pkl")
    probe = ("import pickle, sys, numpy as np, pandas as pd\n"
             f"ft = pickle.loads(open({str(tmp_path / 'ft.pkl')!r}, 'rb').read())\n"
             f"x = ft.transform_batch(pd.read_pickle({str(tmp_path / 'rows.pkl')!r}))\n"
             "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')), x.shape)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"[] {ft.transform_batch(rows).shape}"
    back = pickle.loads(pickle.dumps(ft))
    np.testing.assert_array_equal(back.transform_batch(rows), ft.transform_batch(rows))
    np.testing.assert_array_equal(back.chain_transform(rows), ft.transform_batch(rows))
