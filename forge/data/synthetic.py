"""A realistic synthetic tabular data set with a learnable target and shift knobs.

Used by the demo and by drift work: no download needed. The target depends on
numeric and categorical features through a logistic model, so a classifier can
learn it; `shift` moves feature distributions and `concept_shift` the rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REGIONS = ["north", "south", "east", "west"]
PLANS = ["basic", "plus", "pro"]


def _regions(rng: np.random.Generator, n_rows: int, shift: float, new_category: bool) -> np.ndarray:
    region_p = np.array([0.4, 0.3, 0.2, 0.1])
    if shift:
        region_p = np.roll(region_p, 1) * 0.5 + region_p * 0.5
    regions = list(REGIONS) + (["central"] if new_category else [])
    if new_category:
        region_p = np.append(region_p * 0.7, 0.3)
    return rng.choice(regions, n_rows, p=region_p / region_p.sum())


def _logit(usage, spend, tenure, tickets, plan, discount, concept_shift: float) -> np.ndarray:
    """How the features drive churn; a concept shift turns part of the relation around."""
    plan_effect = pd.Series(plan).map({"basic": 0.6, "plus": 0.0, "pro": -0.6}).to_numpy()
    logit = (-0.04 * (usage - 20) + 0.02 * (spend - 60) - 0.04 * (tenure - 36) + 0.5 * (tickets - 1.2)
             + plan_effect + (1 - 2 * concept_shift) * 3.0 * (discount - 0.15))
    if concept_shift:
        logit = (1 - concept_shift) * logit + concept_shift * (-logit)
    return logit


def generate(
    n_rows: int = 5000,
    seed: int = 0,
    shift: float = 0.0,
    concept_shift: float = 0.0,
    new_category: bool = False,
    null_rate: float = 0.03,
    start: str = "2026-01-01",
    n_entities: int | None = None,
) -> pd.DataFrame:
    """Customer-churn-like rows.

    Args:
        shift: moves the mean of `usage_hours`/`monthly_spend` (in std units) and skews `region`.
        concept_shift: changes how features map to the target (a worse fit for the old model).
        new_category: adds a `region` value never seen in training.
    Returns:
        DataFrame with an entity id, an event timestamp, 8 features and a binary `churned` target.
    """
    rng = np.random.default_rng(seed)
    n_entities = n_entities or max(1, n_rows // 3)
    usage = rng.gamma(2.0, 10.0, n_rows) + shift * 14.0
    spend = rng.normal(60 + shift * 20, 20, n_rows).clip(0)
    tenure = rng.integers(1, 72, n_rows)
    tickets = rng.poisson(1.2 + max(shift, 0), n_rows)
    age = rng.normal(42, 12, n_rows).clip(18, 90).round()
    region = _regions(rng, n_rows, shift, new_category)
    plan = rng.choice(PLANS, n_rows, p=[0.5, 0.3, 0.2])
    discount = rng.uniform(0, 0.3, n_rows)
    logit = _logit(usage, spend, tenure, tickets, plan, discount, concept_shift)
    y = rng.random(n_rows) < 1 / (1 + np.exp(-logit))
    ts = pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.uniform(0, 180 * 86400, n_rows)), unit="s")
    df = pd.DataFrame(
        {
            "customer_id": rng.integers(0, n_entities, n_rows),
            "event_time": ts,
            "usage_hours": usage.round(2),
            "monthly_spend": spend.round(2),
            "tenure_months": tenure,
            "support_tickets": tickets,
            "age": age,
            "region": region,
            "plan": plan,
            "discount": discount.round(4),
            "churned": y.astype(int),
        }
    )
    df["age"] = df["age"].astype("Int64")
    for col in ("usage_hours", "monthly_spend", "age", "region"):
        mask = rng.random(n_rows) < null_rate
        df.loc[mask, col] = None
    return df


def wide(n_rows: int, n_cols: int = 20, seed: int = 0) -> pd.DataFrame:
    """A wide numeric/categorical frame for benchmarks (n_cols features + target)."""
    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.normal(i, 1 + i % 3, n_rows) for i in range(n_cols - 4)}
    for i in range(4):
        data[f"c{i}"] = rng.choice(["a", "b", "c", "d", "e"], n_rows)
    lin = sum(data[f"x{i}"] * ((-1) ** i) / (1 + i) for i in range(n_cols - 4))
    data["target"] = (lin + rng.normal(0, 1, n_rows) > np.median(lin)).astype(int)
    return pd.DataFrame(data)
