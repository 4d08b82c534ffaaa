"""forge/monitoring/drift.py: no false alarms, real shifts found, covariance change caught by multivariate tests."""

import numpy as np
import pandas as pd
import pytest

from forge.config import DriftConfig
from forge.monitoring import drift
from forge.monitoring.performance import estimate_accuracy, estimate_roc_auc

CFG = DriftConfig()


def _frame(n, seed, mean=0.0, cats=("a", "b", "c"), p=(0.5, 0.3, 0.2), rho=0.0):
    rng = np.random.default_rng(seed)
    cov = [[1, rho], [rho, 1]]
    xy = rng.multivariate_normal([mean, 0], cov, n)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "z": rng.gamma(2, 2, n),
                         "c": rng.choice(list(cats), n, p=list(p))})


@pytest.mark.parametrize("n_ref", [500, 5000])  # KS / chi-square below 1000 rows, distances above
def test_no_false_alarm_on_same_distribution(n_ref):
    alarms = 0
    for seed in range(20):
        res = drift.detect(_frame(n_ref, seed), _frame(n_ref, 100 + seed), ["x", "y", "z"], ["c"], CFG)
        alarms += res["dataset_drift"]
    assert alarms <= 1  # the stated rate: p=0.05 per feature, dataset drift needs half of them


@pytest.mark.parametrize("n_ref", [500, 5000])
def test_shifted_mean_is_detected(n_ref):
    res = drift.detect(_frame(n_ref, 1), _frame(n_ref, 2, mean=0.6), ["x", "y", "z"], ["c"], CFG)
    assert res["features"]["x"]["drifted"] and not res["features"]["z"]["drifted"]
    assert res["features"]["x"]["test"] == ("ks" if n_ref <= 1000 else "wasserstein")


@pytest.mark.parametrize("n_ref", [500, 5000])
def test_new_category_is_detected(n_ref):
    cur = _frame(n_ref, 2, cats=("a", "b", "c", "new"), p=(0.35, 0.25, 0.15, 0.25))
    res = drift.detect(_frame(n_ref, 1), cur, ["x"], ["c"], CFG)
    assert res["features"]["c"]["drifted"]
    assert res["features"]["c"]["test"] == ("chi_square" if n_ref <= 1000 else "jensenshannon")


def test_dataset_share_and_psi():
    ref, cur = _frame(2000, 1), _frame(2000, 2, mean=1.0)
    res = drift.detect(ref, cur, ["x", "y"], [], CFG)
    assert res["drift_share"] == 0.5 and res["dataset_drift"]  # share at the 0.5 threshold counts
    psi_cfg = DriftConfig(method="psi")
    assert drift.detect(ref, cur, ["x"], [], psi_cfg)["features"]["x"]["test"] == "psi"
    assert drift.psi(ref["x"].to_numpy(), cur["x"].to_numpy()) > 0.2


def test_covariance_change_missed_by_univariate_caught_by_multivariate():
    ref, cur = _frame(1500, 1, rho=0.0), _frame(1500, 2, rho=0.9)
    uni = drift.detect(ref, cur, ["x", "y"], [], CFG)
    assert not uni["features"]["x"]["drifted"] and not uni["features"]["y"]["drifted"]
    assert drift.domain_classifier(ref, cur, ["x", "y"], [])["drifted"]
    assert drift.mmd(ref, cur, ["x", "y"])["drifted"]
    same = _frame(1500, 3, rho=0.0)
    assert not drift.domain_classifier(ref, same, ["x", "y"], [])["drifted"]
    assert not drift.mmd(ref, same, ["x", "y"])["drifted"]



def _mmd_by_submatrices(reference, current, numeric, max_rows=400, permutations=200, seed=0):
    """The textbook permutation test, one permutation's three submatrix means at a time."""
    from scipy.spatial import distance

    rng = np.random.default_rng(seed)
    ref = reference[numeric].sample(min(len(reference), max_rows), random_state=seed).to_numpy(float)
    cur = current[numeric].sample(min(len(current), max_rows), random_state=seed).to_numpy(float)
    mu, sd = ref.mean(0), ref.std(0) + 1e-12
    z = np.vstack([(ref - mu) / sd, (cur - mu) / sd])
    d2 = distance.squareform(distance.pdist(z, "sqeuclidean"))
    k = np.exp(-d2 / np.median(d2[d2 > 0]))

    def stat(idx):
        a, b = idx[: len(ref)], idx[len(ref):]
        return k[np.ix_(a, a)].mean() + k[np.ix_(b, b)].mean() - 2 * k[np.ix_(a, b)].mean()

    observed = stat(np.arange(len(z)))
    null = np.array([stat(rng.permutation(len(z))) for _ in range(permutations)])
    return observed, (1 + (null >= observed).sum()) / (1 + permutations)


@pytest.mark.parametrize("rho,n_cur", [(0.0, 1500), (0.3, 1500), (0.9, 60)])
def test_mmd_in_one_matrix_product_equals_the_permutation_loop(rho, n_cur):
    ref, cur = _frame(1500, 1), _frame(n_cur, 2, rho=rho)
    statistic, p = _mmd_by_submatrices(ref, cur, ["x", "y", "z"])
    got = drift.mmd(ref, cur, ["x", "y", "z"])
    assert got["statistic"] == pytest.approx(statistic, rel=1e-9, abs=1e-12)
    assert got["p_value"] == p

def test_cbpe_estimates_match_realised_metrics_with_calibrated_scores():
    from sklearn.metrics import accuracy_score, roc_auc_score

    rng = np.random.default_rng(0)
    p = rng.beta(2, 2, 20000)
    y = rng.random(20000) < p  # calibrated by construction
    assert estimate_accuracy(p) == pytest.approx(accuracy_score(y, p > 0.5), abs=0.01)
    assert estimate_roc_auc(p) == pytest.approx(roc_auc_score(y, p), abs=0.01)
