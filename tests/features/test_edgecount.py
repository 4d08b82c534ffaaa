"""The lookup-table bin counter must count exactly as `bincount(searchsorted(edges, v, "right"))` does."""

import numpy as np
import pytest

from forge.features._edgecount import MIN_VALUES, EdgeCounter


def _edges(ref: np.ndarray) -> np.ndarray:
    return np.unique(np.quantile(ref, np.linspace(0, 1, 513)))


def _plain(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


CASES = {
    "normal, shifted": lambda r: (r.normal(size=20_000), r.normal(0.5, 1.0, size=200_000)),
    "uniform": lambda r: (r.uniform(size=20_000), r.uniform(-0.1, 1.1, size=200_000)),
    "heavy tails": lambda r: (r.lognormal(0, 3, size=20_000), r.lognormal(0, 3, size=200_000)),
    "few distinct values": lambda r: (r.integers(0, 10, 20_000) * 1.0, r.integers(-2, 12, 200_000) * 1.0),
    "far from zero": lambda r: (r.normal(size=20_000) + 1e12, r.normal(size=200_000) + 1e12),
    "tiny scale": lambda r: (r.normal(size=20_000) * 1e-300, r.normal(size=200_000) * 1e-300),
}


@pytest.mark.parametrize("case", list(CASES))
def test_counts_equal_searchsorted(case):
    ref, cur = CASES[case](np.random.default_rng(7))
    counter = EdgeCounter(_edges(ref))
    for _ in range(2):  # the second call runs on the table kept (or dropped) by the first
        assert np.array_equal(counter.counts(cur), _plain(counter.edges, cur))


def test_values_on_and_beside_every_edge_and_extremes():
    rng = np.random.default_rng(3)
    edges = _edges(rng.normal(size=20_000))
    cur = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                          [1e308, -1e308, edges[-1] + 1e-9, edges[0] - 1e-9], rng.normal(size=MIN_VALUES)])
    counter = EdgeCounter(edges)
    assert np.array_equal(counter.counts(cur), _plain(edges, cur))
    assert counter._table is not None  # the table, not the fallback, answered


def test_small_batches_take_searchsorted():
    edges = _edges(np.random.default_rng(0).normal(size=5000))
    counter = EdgeCounter(edges)
    cur = np.random.default_rng(1).normal(size=100)
    assert np.array_equal(counter.counts(cur), _plain(edges, cur))
    assert not counter._built
