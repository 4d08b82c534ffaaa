"""forge/features/bins.py + monitoring/binned_tests.py + stream.py: binned drift gives the exact tests' verdicts
on every column, within its stated error bounds, from one streamed pass over a file."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forge.config import DriftConfig
from forge.data.synthetic import generate, wide
from forge.features.bins import Bins
from forge.monitoring.binned_tests import detect_binned
from forge.monitoring.drift import detect
from forge.monitoring.stream import Reservoir, bin_local

NUM = [f"x{i}" for i in range(16)]
CAT = [f"c{i}" for i in range(4)]
CHURN_NUM = ["usage_hours", "monthly_spend", "tenure_months", "support_tickets", "age", "discount"]
CHURN_CAT = ["region", "plan"]


def _both(ref: pd.DataFrame, cur: pd.DataFrame, num, cat, cfg=DriftConfig()):
    bins = Bins.fit(ref, num, cat)
    cur_bins = bins.empty_like()
    cur_bins.add(__import__("pyarrow").Table.from_pandas(cur, preserve_index=False))
    return detect_binned(bins, cur_bins, cfg), detect(ref, cur, num, cat, cfg)


def _agree(binned: dict, exact: dict, ref: pd.DataFrame, cur: pd.DataFrame) -> None:
    assert binned["dataset_drift"] == exact["dataset_drift"]
    for col, e in exact["features"].items():
        b = binned["features"][col]
        assert b["test"] == e["test"] and b["drifted"] == e["drifted"], (col, b, e)
        if b["test"] == "wasserstein":
            assert abs(b["statistic"] - e["statistic"]) <= b["error_bound"] + 1e-9, (col, b, e)
            r, c = ref[col].dropna().to_numpy(float), cur[col].dropna().to_numpy(float)
            exact_ks = stats.ks_2samp(r, c).statistic
            assert b["ks"] - 1e-9 <= exact_ks <= b["ks"] + b["ks_error_bound"] + 1e-9, (col, b["ks"], exact_ks)
        else:
            assert b["statistic"] == pytest.approx(e["statistic"], abs=1e-12), col


def test_the_benchmark_shape_gets_the_exact_verdicts():
    ref, cur = wide(100_000, 20, seed=0), wide(200_000, 20, seed=1)
    cur["x0"] += 0.5  # the benchmark's shift: one drifted column
    cur["x5"] += 0.05 * cur["x5"].std()  # and one just under the threshold
    binned, exact = _both(ref, cur, NUM, CAT)
    _agree(binned, exact, ref, cur)
    assert binned["features"]["x0"]["drifted"] and not binned["features"]["x5"]["drifted"]


@pytest.mark.parametrize("shift,new_category,concept", [(0.0, False, 0.0), (1.5, False, 0.0), (0.6, True, 0.0),
                                                        (0.0, False, 1.0)])
def test_the_test_data_sets_get_the_exact_verdicts(shift, new_category, concept):
    ref = generate(6000, seed=3)
    cur = generate(4000, seed=4, shift=shift, new_category=new_category, concept_shift=concept)
    binned, exact = _both(ref, cur, CHURN_NUM, CHURN_CAT)
    _agree(binned, exact, ref, cur)


def test_psi_method_on_bins_is_close_to_the_exact_psi():
    ref, cur = generate(6000, seed=3), generate(4000, seed=4, shift=1.0)
    cfg = DriftConfig(method="psi")
    binned, exact = _both(ref, cur, CHURN_NUM, CHURN_CAT, cfg)
    for col, e in exact["features"].items():
        assert binned["features"][col]["drifted"] == e["drifted"], col


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_one_streamed_pass_bins_a_file_as_the_frame(tmp_path, fmt):
    ref, cur = generate(3000, seed=3), generate(5000, seed=9, shift=0.7)
    path = tmp_path / f"cur.{fmt}"
    {"parquet": lambda: cur.to_parquet(path), "csv": lambda: cur.to_csv(path, index=False),
     "json": lambda: cur.to_json(path, orient="records", lines=True, date_format="iso")}[fmt]()
    bins = Bins.fit(ref, CHURN_NUM, CHURN_CAT)
    streamed, sample = bin_local(str(path), fmt, bins, extra=[], sample_rows=500)
    framed = bins.empty_like()
    framed.add(__import__("pyarrow").Table.from_pandas(cur, preserve_index=False))
    assert streamed.rows == framed.rows == 5000
    for col in CHURN_NUM:
        assert (streamed.numeric[col].counts == framed.numeric[col].counts).all(), col
    for col in CHURN_CAT:
        assert streamed.categorical[col] == framed.categorical[col], col
    assert len(sample) == 500 and set(sample.columns) >= set(CHURN_NUM)


def test_reservoir_keeps_a_uniform_sample_across_batches():
    import pyarrow as pa

    res = Reservoir(1000, seed=1)
    for start in range(0, 100_000, 7_000):
        res.add(pa.table({"i": np.arange(start, min(start + 7_000, 100_000))}))
    kept = res.frame()["i"].to_numpy()
    assert len(kept) == len(set(kept)) == 1000
    assert 40_000 < kept.mean() < 60_000 and (kept >= 93_000).any() and (kept < 7_000).any()


def test_bins_round_trip_through_json():
    bins = Bins.fit(generate(2000, seed=1), CHURN_NUM, CHURN_CAT)
    back = Bins.from_json(bins.to_json())
    assert back.rows == bins.rows and back.categorical == bins.categorical
    assert all((back.numeric[c].edges == bins.numeric[c].edges).all() for c in CHURN_NUM)


def test_read_ahead_bins_as_the_pass_and_stays_bounded(tmp_path):
    """Batches read ahead on a thread give the same bins and sample; the reader waits at `depth` batches, and
    `close` ends it."""
    import time

    import pyarrow.dataset as pads

    from forge.data.readahead import ReadAhead
    from forge.monitoring.stream import BATCH_ROWS, read_ahead

    ref, cur = wide(20_000, 8, seed=0), wide(2 * BATCH_ROWS + 1000, 8, seed=1)
    path = tmp_path / "cur.parquet"
    cur.to_parquet(path, row_group_size=100_000)
    bins = Bins.fit(ref, ["x0", "x1"], ["c0"])
    plain, plain_sample = bin_local(str(path), "parquet", bins, extra=["nope"])
    ahead = read_ahead(str(path))
    blocked = ReadAhead(lambda: pads.dataset(path).to_batches(batch_size=BATCH_ROWS), depth=1)
    read, sample = bin_local(str(path), "parquet", bins, extra=["nope"], ahead=ahead)
    assert read.rows == plain.rows == len(cur)
    assert all((read.numeric[c].counts == plain.numeric[c].counts).all() for c in ["x0", "x1"])
    assert read.categorical == plain.categorical and sample.equals(plain_sample)
    time.sleep(1.0)
    assert blocked.thread.is_alive() and blocked._queue.qsize() == 1  # three batches in the file, one held
    blocked.close()
    blocked.thread.join(timeout=10)
    assert not blocked.thread.is_alive()
    assert read_ahead(str(tmp_path / "missing.parquet")) is None and read_ahead("s3://b/k.parquet") is None


def test_read_ahead_raises_what_the_plain_read_raises(tmp_path):
    from forge.monitoring.stream import read_ahead

    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")
    bins = Bins.fit(generate(2000, seed=1), CHURN_NUM, CHURN_CAT)
    with pytest.raises(Exception) as plain:
        bin_local(str(path), "parquet", bins, extra=[])
    with pytest.raises(type(plain.value)):
        bin_local(str(path), "parquet", bins, extra=[], ahead=read_ahead(str(path)))
