"""forge/monitoring/window.py: a window summarised with Ray Data gives the verdicts and statistics of the whole."""

import numpy as np
import pytest

from forge.config import DriftConfig
from forge.monitoring import drift
from forge.monitoring.window import summarise
from tests.monitoring.test_drift import _frame

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("n_ref", [500, 5000])  # KS / chi-square on the subsample, distances on the summary
def test_summary_matches_the_whole_window(ray_session, n_ref):
    ref = _frame(n_ref, 0)
    cur = _frame(60_000, 1, mean=0.3, cats=("a", "b", "c", "d"), p=(0.4, 0.3, 0.2, 0.1))
    cur.loc[::50, "x"] = np.nan  # nulls are no values, in both paths
    ds = ray_session.data.from_pandas(cur).repartition(7)
    summary = summarise(ds, ["x", "y", "z"], ["c"])
    assert len(summary) == 60_000 and 0 < len(summary.sample) <= 25_000
    assert summary.categorical["c"].sum() == 60_000  # categorical counts are exact
    for method in ("auto", "psi"):
        cfg = DriftConfig(method=method)
        whole = drift.detect(ref, cur, ["x", "y", "z"], ["c"], cfg)
        part = drift.detect(ref, summary, ["x", "y", "z"], ["c"], cfg)
        assert part["rows_current"] == whole["rows_current"]
        for col, w in whole["features"].items():
            p = part["features"][col]
            assert (p["test"], p["drifted"]) == (w["test"], w["drifted"]), (method, col, p, w)
            if p["test"] in ("wasserstein", "psi", "jensenshannon", "chi_square"):
                assert p["statistic"] == pytest.approx(w["statistic"], rel=0.03, abs=2e-3), (method, col)
        if method == "auto":
            assert part["features"]["x"]["drifted"] and not part["features"]["y"]["drifted"]


def test_drift_of_a_large_file_through_ray_data_agrees_with_pandas(trained_project, tmp_path):
    from forge.data import synthetic
    from forge.monitoring.monitor import run_drift

    cfg, _ = trained_project
    current = tmp_path / "current.parquet"
    synthetic.generate(30_000, seed=8, shift=1.5).to_parquet(current)
    results = {}
    for engine in ("pandas", "ray"):
        c = cfg.model_copy(deep=True)
        c.config_path, c.monitoring.drift.engine = cfg.config_path, engine
        results[engine] = run_drift(c, str(current), html_out=str(tmp_path / f"{engine}.html")).to_dict()
    pd_res, ray_res = results["pandas"], results["ray"]
    assert "Ray Data" in ray_res["current"] and ray_res["rows_current"] == pd_res["rows_current"] == 30_000
    assert ray_res["dataset_drift"] == pd_res["dataset_drift"] and ray_res["dataset_drift"]
    for col, f in pd_res["features"].items():
        assert ray_res["features"][col]["drifted"] == f["drifted"], col
    # the prediction was scored by the champion inside Ray Data, batch by batch
    assert ray_res["prediction"]["statistic"] == pytest.approx(pd_res["prediction"]["statistic"], rel=0.05)
    assert (tmp_path / "ray.html").stat().st_size > 10_000
