"""Rows of dicts turned into columns, shared by the feature transform of a served request and the prediction log."""

from __future__ import annotations

from operator import itemgetter


def by_column(rows: list[dict], names: list[str]) -> list:
    """Each name's values in row order, None where a row lacks the name.

    Transposed in C (itemgetter, zip) when every row has every name, as a validated request's rows do; a lookup per
    row and name otherwise. The C path was half of a 100-row request's feature transform (0.13 of 0.27 ms,
    bench/serve's 24-column model) and 0.43 against 0.77 ms per 500 rows x 20 of the log's flush.
    """
    if rows and names:
        try:
            if len(names) == 1:
                return [list(map(itemgetter(names[0]), rows))]
            return list(zip(*map(itemgetter(*names), rows)))
        except KeyError:  # a row without one of the names
            pass
    return [[r.get(c) for r in rows] for c in names]
