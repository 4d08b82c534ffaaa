"""forge/features/store.py: point-in-time correctness on a hand-checkable table, and online lookups."""

import pandas as pd
import pytest

from forge.features.store import FeatureStore

FEATURES = pd.DataFrame({
    "id": [1, 1, 1, 2, 2],
    "t": pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-05", "2026-01-02", "2026-01-04"]),
    "v": [10.0, 30.0, 50.0, 20.0, 40.0],
})


PATHS = pytest.mark.parametrize("in_process_rows", [0, 10**9], ids=["bucketed", "in-process"])


@PATHS
def test_point_in_time_lookup(tmp_path, in_process_rows):
    store = FeatureStore(tmp_path, buckets=3, in_process_rows=in_process_rows)
    store.write_table("usage", FEATURES, entity="id", timestamp="t")
    q = pd.DataFrame({"id": [1, 1, 1, 2, 3, 1, 2],
                      "t": pd.to_datetime(["2025-12-31", "2026-01-03", "2026-01-04", "2026-01-02", "2026-01-09",
                                           "2026-01-10", "2026-01-03"])})
    out = store.get_historical_features("usage", q)
    assert list(out["id"]) == list(q["id"]) and list(out["t"]) == list(q["t"])  # input order kept
    expected = [None, 30.0, 30.0, 20.0, None, 50.0, 20.0]
    # before any value -> null; equal timestamp -> that value; never a later one
    assert [None if pd.isna(v) else v for v in out["v"]] == expected


def test_online_latest_values(tmp_path):
    store = FeatureStore(tmp_path, buckets=2)
    store.write_table("usage", FEATURES, entity="id", timestamp="t")
    view = store.online("usage")
    assert view.get_online_features([2, 1, 99]) == [{"v": 40.0}, {"v": 50.0}, None]


@PATHS
def test_matches_pandas_merge_asof(tmp_path, in_process_rows):
    import numpy as np

    rng = np.random.default_rng(0)
    feats = pd.DataFrame({"id": rng.integers(0, 50, 2000), "t": pd.Timestamp("2026-01-01") +
                          pd.to_timedelta(rng.integers(0, 10**6, 2000), unit="s"), "v": rng.normal(size=2000)})
    feats = feats.drop_duplicates(["id", "t"])
    q = pd.DataFrame({"id": rng.integers(0, 60, 500), "t": pd.Timestamp("2026-01-01") +
                      pd.to_timedelta(rng.integers(0, 10**6, 500), unit="s")})
    store = FeatureStore(tmp_path, buckets=4, in_process_rows=in_process_rows)
    store.write_table("f", feats, "id", "t")
    ours = store.get_historical_features("f", q)
    ref = pd.merge_asof(q.reset_index().sort_values("t"), feats.sort_values("t"), on="t", by="id",
                        direction="backward").sort_values("index")
    np.testing.assert_array_equal(ours["v"].to_numpy(), ref["v"].to_numpy())


def test_rows_without_a_timestamp_match_nothing_on_both_paths(tmp_path):
    q = pd.DataFrame({"id": [1, 2, 1], "t": pd.to_datetime(["2026-01-04", None, "2026-01-06"])})
    outs = []
    for rows in (0, 10**9):
        store = FeatureStore(tmp_path / str(rows), buckets=2, in_process_rows=rows)
        store.write_table("usage", FEATURES, entity="id", timestamp="t")
        outs.append(store.get_historical_features("usage", q))
    for out in outs:
        assert list(out["id"]) == [1, 2, 1] and pd.isna(out["t"][1])
        assert [None if pd.isna(v) else v for v in out["v"]] == [30.0, None, 50.0]
