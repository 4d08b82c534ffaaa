"""forge/monitoring/ab.py: a real difference is found, A/A finds none at the stated rate, SRM is flagged."""

import numpy as np

from forge.config import Variant
from forge.monitoring.ab import compare, srm
from forge.serving.routing import assign


def test_real_difference_is_found():
    rng = np.random.default_rng(0)
    res = compare(rng.random(4000) < 0.70, rng.random(4000) < 0.75, "proportion")
    assert res["significant"] and res["difference"] > 0 and res["ci95"][0] > 0 and res["ci95"][1] < 0.1


def test_aa_false_positive_rate_is_about_alpha():
    hits = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        hits += compare(rng.random(1000) < 0.7, rng.random(1000) < 0.7, "proportion")["significant"]
    assert hits / 400 < 0.085  # 5% expected; binomial noise over 400 tests
    hits = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        hits += compare(rng.normal(0, 1, 300), rng.normal(0, 1, 300), "continuous")["significant"]
    assert hits / 300 < 0.09


def test_welch_finds_a_shift_in_means():
    rng = np.random.default_rng(1)
    res = compare(rng.normal(0, 1, 2000), rng.normal(0.3, 2, 2000), "continuous")
    assert res["test"] == "welch_t" and res["significant"] and res["ci95"][0] < 0.3 < res["ci95"][1]


def test_sample_ratio_mismatch_is_flagged():
    assert srm({"a": 5000, "b": 5000}, {"a": 1, "b": 1})["mismatch"] is False
    assert srm({"a": 5200, "b": 4800}, {"a": 1, "b": 1})["mismatch"] is True


def test_sticky_assignment_and_weights():
    variants = [Variant(name="a", model="champion", weight=0.8), Variant(name="b", model="challenger", weight=0.2)]
    assert all(assign(variants, "exp1", f"user{i}").name == assign(variants, "exp1", f"user{i}").name
               for i in range(200))
    share = np.mean([assign(variants, "exp1", f"user{i}").name == "a" for i in range(5000)])
    assert abs(share - 0.8) < 0.03
    moved = np.mean([assign(variants, "exp1", f"u{i}").name != assign(variants, "exp2", f"u{i}").name
                     for i in range(2000)])
    assert moved > 0.1  # a new experiment id reshuffles
