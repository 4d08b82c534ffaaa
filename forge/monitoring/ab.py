"""A/B statistics: sample-ratio mismatch, the primary metric with a 95% CI, guardrails, a verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from forge.config import ForgeConfig
from forge.errors import UsageError
from forge.monitoring.labels import join_labels, read_labels
from forge.monitoring.prediction_log import read_log
from forge.workspace import Workspace

SRM_P = 0.001  # the usual bar: a smaller p-value means the split itself is broken


def srm(counts: dict[str, int], weights: dict[str, float]) -> dict:
    """Chi-square goodness of fit of observed counts against the configured weights."""
    names = list(counts)
    obs = np.array([counts[n] for n in names], dtype=float)
    w = np.array([weights.get(n, 0.0) for n in names], dtype=float)
    exp = obs.sum() * w / w.sum()
    chi2, p = stats.chisquare(obs, exp)
    return {"chi2": float(chi2), "p_value": float(p), "mismatch": bool(p < SRM_P), "observed": counts,
            "expected_share": dict(zip(names, (w / w.sum()).tolist()))}


def compare(control: np.ndarray, treatment: np.ndarray, kind: str, alpha: float = 0.05) -> dict:
    """Difference treatment - control: two-proportion z-test (binary) or Welch's t-test (continuous)."""
    c, t = np.asarray(control, float), np.asarray(treatment, float)
    diff = t.mean() - c.mean()
    if kind == "proportion":
        pooled = (c.sum() + t.sum()) / (len(c) + len(t))
        se0 = np.sqrt(pooled * (1 - pooled) * (1 / len(c) + 1 / len(t)))
        z = diff / se0 if se0 > 0 else 0.0
        p = float(2 * stats.norm.sf(abs(z)))
        se = np.sqrt(c.mean() * (1 - c.mean()) / len(c) + t.mean() * (1 - t.mean()) / len(t))
        q = stats.norm.ppf(1 - alpha / 2)
        lo, hi = diff - q * se, diff + q * se
        test, statistic = "two_proportion_z", float(z)
    else:
        res = stats.ttest_ind(t, c, equal_var=False)
        ci = res.confidence_interval(1 - alpha)
        lo, hi, p, test, statistic = float(ci.low), float(ci.high), float(res.pvalue), "welch_t", float(res.statistic)
    return {"test": test, "statistic": statistic, "p_value": p, "difference": float(diff),
            "ci95": [float(lo), float(hi)], "significant": bool(p < alpha), "control_mean": float(c.mean()),
            "treatment_mean": float(t.mean()), "n_control": int(len(c)), "n_treatment": int(len(t))}


def ab_report(cfg: ForgeConfig) -> dict:
    """Per-variant traffic, SRM, primary metric from delayed labels, latency guardrail and a verdict."""
    ws = Workspace.from_config(cfg)
    log = read_log(ws.prediction_folder(cfg))
    log = log[log["variant"] != "shadow"] if len(log) else log
    variants = cfg.serving.traffic.variants
    if len(variants) < 2:
        raise UsageError("serving.traffic.variants: an A/B report needs at least two variants")
    control, treatment = variants[0].name, variants[1].name
    reqs = log.drop_duplicates("request_id") if len(log) else log
    counts = {v.name: int((reqs["variant"] == v.name).sum()) if len(reqs) else 0 for v in variants}
    out: dict = {"control": control, "treatment": treatment,
                 "srm": srm(counts, {v.name: v.weight for v in variants})}
    lat = {v: {"p50_ms": float(np.percentile(g["latency_ms"], 50)), "p99_ms": float(np.percentile(g["latency_ms"], 99))}
           for v, g in reqs.groupby("variant")} if len(reqs) else {}
    out["latency"] = lat
    joined = join_labels(log, read_labels(ws.labels(cfg.name))) if len(log) else pd.DataFrame()
    primary = None
    if len(joined):
        regression = pd.api.types.is_float_dtype(joined["label"]) and joined["label"].nunique() > 20
        kind = "continuous" if regression else "proportion"
        outcome = (-(joined["prediction"].astype(float) - joined["label"].astype(float)).abs() if regression
                   else (joined["prediction"].astype(str) == joined["label"].astype(str)).astype(float))
        joined = joined.assign(outcome=outcome)
        groups = {v: g["outcome"].to_numpy() for v, g in joined.groupby("variant")}
        if control in groups and treatment in groups and min(len(groups[control]), len(groups[treatment])) >= 2:
            primary = compare(groups[control], groups[treatment], kind)
            primary["metric"] = "negative_abs_error" if regression else "accuracy"
    out["primary"] = primary
    guard_ok = True
    if control in lat and treatment in lat:
        guard_ok = lat[treatment]["p99_ms"] <= 1.2 * lat[control]["p99_ms"] + 5
    out["guardrails"] = {"latency_p99_ok": guard_ok}
    if out["srm"]["mismatch"]:
        verdict = "invalid: sample ratio mismatch"
    elif primary is None:
        verdict = "waiting for labels"
    elif not primary["significant"]:
        verdict = "no significant difference"
    elif primary["difference"] > 0 and guard_ok:
        verdict = f"{treatment} wins"
    elif primary["difference"] > 0:
        verdict = f"{treatment} better on the metric but fails the latency guardrail"
    else:
        verdict = f"{control} wins"
    out["verdict"] = verdict
    return out
