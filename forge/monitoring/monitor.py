"""`forge drift`: the current data (a file or the prediction log window) against the champion's reference."""

from __future__ import annotations

import glob
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forge.config import ForgeConfig
from forge.errors import UsageError
from forge.monitoring import drift as d
from forge.monitoring.performance import estimate
from forge.monitoring.prediction_log import read_log
from forge.monitoring.report import render
from forge.monitoring.window import file_format, large, read_current, summarise
from forge.registry.client import ModelRef, Registry
from forge.workspace import Workspace

PREDICTION = "__prediction__"


def read_table(path: str) -> pd.DataFrame:
    fmt = file_format(path)
    if fmt == "parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True) if fmt == "json" else pd.read_csv(path)


def parse_since(text: str) -> float:
    """A duration such as 90s, 30m, 6h, 7d (or plain seconds) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        return float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise UsageError(f"--since {text!r}: expected a duration such as 90s, 30m, 6h or 7d") from None


def current_window(cfg: ForgeConfig, current: str | None, last: int | None = None,
                   since_s: float | None = None) -> tuple[pd.DataFrame, str]:
    """The data to test: a file, or (current None or 'log') a prediction-log window of the served variants.

    The window is the last `last` rows, else the last `since_s` seconds (or `window_s`), else `window_rows` rows.
    """
    if current and current != "log":
        return read_table(current), current
    folder = Workspace.from_config(cfg).predictions(cfg.name)
    since_s = None if last else (since_s or cfg.monitoring.drift.window_s)
    start = pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(seconds=since_s) if since_s else None
    df = read_log(folder, since=start)
    df = df[df["variant"] != "shadow"] if "variant" in df else df  # a shadow's answers are no served traffic
    if start is None:
        df = df.tail(last or cfg.monitoring.drift.window_rows).reset_index(drop=True)
    what = f"since {start:%Y-%m-%d %H:%M:%S} UTC" if start is not None else "newest rows"
    return df, f"prediction log ({folder}, {what}: {len(df)} rows)"


def _on_ray(cfg: ForgeConfig, current: str | None) -> bool:
    """A current-data file goes through Ray Data when configured so, or (auto) when it is large or remote."""
    engine = cfg.monitoring.drift.engine
    if not current or current == "log" or engine == "pandas":
        return False
    return engine == "ray" or large(current, cfg.monitoring.drift.ray_min_mb)


def _summarised(current: str, numeric: list[str], categorical: list[str], model: ModelRef):
    """The current file summarised with Ray Data, scored by the champion on the way unless it has a score."""
    from forge._runtime import init_ray

    init_ray()
    ds = read_current(current)
    scored = "score" in ds.schema().names
    if scored:
        ds = ds.rename_columns({"score": PREDICTION})
    summary = summarise(ds, numeric, categorical, None if scored else model, score_column=PREDICTION)
    if summary.n_rows == 0:
        raise UsageError(f"no current data in {current}")
    return summary, f"{current} ({summary.n_rows} rows, summarised with Ray Data)"


@dataclass
class DriftResult:
    """Drift of one current data set against the champion's training reference (`forge drift --json`)."""

    dataset_drift: bool
    drift_share: float
    drifted_features: int
    n_features: int
    threshold_share: float
    rows_reference: int
    rows_current: int
    features: dict[str, dict]
    model_name: str = ""
    model_version: str = ""
    current: str = ""
    prediction: dict | None = None
    multivariate: dict | None = None
    performance_estimate: dict | None = None
    report_path: str | None = None
    html_path: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready; the parts that were not computed (multivariate, CBPE, HTML) are left out."""
        return {k: v for k, v in asdict(self).items()
                if v is not None or k not in ("multivariate", "performance_estimate", "html_path")}


def run_drift(cfg: ForgeConfig, current: str | None = None, html_out: str | None = None,
              multivariate: bool = True, last: int | None = None, since_s: float | None = None) -> DriftResult:
    if current and current != "log" and "://" not in current and not glob.glob(current):
        raise UsageError(f"--current: {current} does not exist")
    registry = Registry.of(cfg)
    pinned = registry.ref()
    version = pinned.version
    ref, stats = registry.reference(registry.model_version(version).run_id)
    numeric = [c for c, s in stats.items() if s["type"] == "numeric"]
    categorical = [c for c, s in stats.items() if s["type"] == "categorical"]
    n_ref = max(s["count"] + s["nulls"] for s in stats.values())
    model = pinned.load()
    ref_pred = model.score_value(*model.predict_raw(ref))
    if _on_ray(cfg, current):
        cur, label = _summarised(current, numeric, categorical, pinned)
        rows = cur.sample  # raw rows for the multivariate tests, CBPE and the plots: a uniform subsample
        if PREDICTION not in rows:
            rows[PREDICTION] = model.score_value(*model.predict_raw(rows))
        rows_pred = rows[PREDICTION].to_numpy()
        cur_pred = cur[PREDICTION]
    else:
        cur, label = current_window(cfg, current, last, since_s)
        if cur.empty:
            raise UsageError(f"no current data in {label}")
        rows = cur
        rows_pred = cur["score"].to_numpy() if "score" in cur else model.score_value(*model.predict_raw(cur))
        cur_pred = pd.Series(rows_pred)
    result = DriftResult(**d.detect(ref, cur, numeric, categorical, cfg.monitoring.drift, n_ref),
                         model_name=cfg.name, model_version=version, current=label)
    result.prediction = d.column_drift(pd.Series(ref_pred), cur_pred, "numeric", cfg.monitoring.drift, n_ref)
    if multivariate and len(rows) >= 20:
        tests = {"domain_classifier": d.domain_classifier(ref, rows, numeric, categorical),
                 "mmd": d.mmd(ref, rows, numeric) if numeric else None}
        result.multivariate = {k: v for k, v in tests.items() if v}
    if model.task == "classification" and model.classes is not None and len(model.classes) == 2:
        result.performance_estimate = {**estimate(np.asarray(rows_pred, dtype=float)),
                                       "reference": estimate(np.asarray(ref_pred, dtype=float))}
    path = Workspace.from_config(cfg).reports() / f"drift-{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    result.report_path = str(path)
    path.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    if html_out:
        Path(html_out).write_text(render(result.to_dict(), ref, rows, numeric,
                                         f"Drift: {cfg.name} v{version} vs {label}"))
        result.html_path = str(Path(html_out).resolve())
    return result
