"""Train / validation / test split: stratified by seed, or by time when data.timestamp is set."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from forge.errors import UsageError


@dataclass
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    method: str


def split_frame(
    df: pd.DataFrame,
    target: str,
    val_size: float,
    test_size: float,
    seed: int,
    timestamp: str | None = None,
    stratify: bool = True,
    method: str | None = None,
) -> Splits:
    """Split rows; a time split puts the oldest rows in train and the newest in test.

    With a time split no training row is later than any validation or test row
    (ties at the boundary go to the earlier split, so equal timestamps never
    straddle it).
    """
    method = method or ("time" if timestamp else "random")
    if method == "time":
        if not timestamp:
            raise UsageError("data.split.method: time needs data.timestamp")
        df = df.sort_values(timestamp, kind="stable").reset_index(drop=True)
        ts = df[timestamp]
        n = len(df)
        cut_test = ts.iloc[int(n * (1 - test_size))]
        cut_val = ts.iloc[int(n * (1 - test_size - val_size))]
        train, val, test = df[ts <= cut_val], df[(ts > cut_val) & (ts <= cut_test)], df[ts > cut_test]
        if min(len(train), len(val), len(test)) == 0:
            raise UsageError(f"time split on {timestamp!r} left an empty split (too few distinct timestamps)")
        return Splits(train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True), "time")
    strat = df[target] if stratify else None
    rest, test = train_test_split(df, test_size=test_size, random_state=seed, stratify=strat)
    strat = rest[target] if stratify else None
    train, val = train_test_split(rest, test_size=val_size / (1 - test_size), random_state=seed, stratify=strat)
    return Splits(train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True), "random")
