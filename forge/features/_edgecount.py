"""Counting values into bins on sorted edges, equal to `bincount(searchsorted(edges, v, "right"))`, faster.

`searchsorted` costs a binary search per value: 53 ms per million values on 513 edges here, the largest part of
`forge drift --current FILE`'s pass. Quantile edges are fixed per model, so a lookup table over a uniform grid
of `CELLS` cells between the first and last edge answers most values with one multiply and one `bincount`:
a cell none of whose edges fall inside (with a margin of 1% of a cell for rounding) maps every value in it to
one bin. Only values in cells that straddle an edge go through `searchsorted`: about 3% of a normal column.
Measured on one million normal values against 513 quantile edges: 53 ms with searchsorted, 10-12 ms here.
Where over half the values land in uncertain cells (heavy tails crowd the edges into a few cells, or few
distinct values sit on the edges), the column goes back to plain `searchsorted` after its first batch.
"""

from __future__ import annotations

import numpy as np

CELLS = 1 << 16
MIN_VALUES = 50_000  # below this, building the table costs about what it saves


class EdgeCounter:
    """Counts over (-inf, e0), [e0, e1), ..., [e_last, inf) for fixed sorted `edges`."""

    def __init__(self, edges: np.ndarray):
        self.edges = edges
        self._table: tuple[float, float, np.ndarray, np.ndarray] | None = None
        self._built = False

    def counts(self, values: np.ndarray) -> np.ndarray:
        """The count of finite `values` per bin (len(edges) + 1 bins)."""
        table = self._lookup() if len(values) >= MIN_VALUES else None
        if table is None:
            return np.bincount(np.searchsorted(self.edges, values, side="right"), minlength=len(self.edges) + 1)
        lo, scale, first, exact = table
        # Slot g + 1 holds the values with floor((v - lo) * scale) == g; slot 0 only values below lo (the
        # product is negative exactly when v < lo), the last slot only values at least a cell above the last edge.
        with np.errstate(over="ignore"):  # a value far beyond the edges overflows to inf: the last slot, rightly
            x = values - lo
            x *= scale
        x += 1.0
        np.clip(x, 0.0, CELLS + 2.0, out=x)
        slot = x.astype(np.intp)
        per_slot = np.bincount(slot, minlength=len(first))
        out = np.bincount(first[exact], weights=per_slot[exact], minlength=len(self.edges) + 1).astype(np.int64)
        unsure = ~exact
        n_unsure = int(per_slot[unsure].sum())
        if n_unsure:
            rest = values[unsure[slot]]
            out += np.bincount(np.searchsorted(self.edges, rest, side="right"), minlength=len(self.edges) + 1)
        if n_unsure > len(values) // 2:  # the edges crowd into a few cells (heavy tails): the table only costs
            self._table = None
        return out

    def _lookup(self):
        if not self._built:
            self._table, self._built = _build(self.edges), True
        return self._table


def _build(edges: np.ndarray):
    """(lo, cells per unit, first bin per slot, whether the slot's bin is certain), or None when the grid would
    be finer than float64 can place a value in (then every value takes `searchsorted`)."""
    if len(edges) < 64:  # a binary search over few edges is as cheap as the table
        return None
    lo, hi = float(edges[0]), float(edges[-1])
    scale = CELLS / (hi - lo) if hi > lo else np.inf
    if not np.isfinite(scale) or np.spacing(max(abs(lo), abs(hi))) * scale > 1e-4:
        return None
    g = np.arange(-1, CELLS + 2, dtype=np.float64)
    first = np.searchsorted(edges, lo + (g - 0.01) / scale, side="right")
    last = np.searchsorted(edges, lo + (g + 1.01) / scale, side="right")
    first[0], last[0] = 0, 0  # values below lo: bin 0, always
    return lo, scale, first, first == last
