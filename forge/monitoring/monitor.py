"""`forge drift`: the current data (a file or the prediction log window) against the champion's reference."""

from __future__ import annotations

import glob
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from forge.config import ForgeConfig
from forge.errors import UsageError
from forge.features.bins import Bins
from forge.monitoring.performance import estimate
from forge.monitoring.prediction_log import read_log
from forge.monitoring.report import render
from forge.monitoring.window import file_format, large, read_current, summarise
from forge.workspace import Workspace

if TYPE_CHECKING:  # imported where used: MLflow and SciPy cost 1.5-2 s, which the read-ahead overlaps
    from forge.data.readahead import ReadAhead
    from forge.registry.client import ModelRef, Registry

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
    folder = Workspace.from_config(cfg).prediction_folder(cfg)
    since_s = None if last else (since_s or cfg.monitoring.drift.window_s)
    start = pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(seconds=since_s) if since_s else None
    df = read_log(folder, since=start)
    df = df[df["variant"] != "shadow"] if "variant" in df else df  # a shadow's answers are no served traffic
    if start is None:
        df = df.tail(last or cfg.monitoring.drift.window_rows).reset_index(drop=True)
    what = f"since {start:%Y-%m-%d %H:%M:%S} UTC" if start is not None else "newest rows"
    return df, f"prediction log ({folder}, {what}: {len(df)} rows)"


def _engine(cfg: ForgeConfig, current: str | None, bins, n_ref: int) -> str:
    """binned, summary (the Ray Data quantile summary of models trained without bins) or exact."""
    engine = cfg.monitoring.drift.engine
    if not current or current == "log" or engine in ("exact", "pandas"):
        return "exact"
    if bins is not None and (engine in ("binned", "ray") or n_ref > cfg.monitoring.drift.small_reference_rows):
        return "binned"
    return "summary" if engine == "ray" or large(current, cfg.monitoring.drift.ray_min_mb) else "exact"


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


def _binned(cfg: ForgeConfig, current: str, bins: Bins, ahead: ReadAhead | None) -> tuple[dict, pd.DataFrame, str]:
    """(verdicts from bins, a uniform row sample, label) from one pass over the current file (or `ahead`, its
    batches already being read)."""
    from forge.monitoring.binned_tests import detect_binned
    from forge.monitoring.stream import bin_local, bin_ray

    if "://" in current or cfg.monitoring.drift.engine == "ray":
        from forge._runtime import init_ray

        init_ray()
        cur, sample = bin_ray(current, bins)
        how = "binned with Ray Data"
    else:
        cur, sample = bin_local(current, file_format(current), bins, extra=["score"], ahead=ahead)
        how = "binned in one Arrow pass"
    if cur.rows == 0:
        raise UsageError(f"no current data in {current}")
    return detect_binned(bins, cur, cfg.monitoring.drift), sample, f"{current} ({cur.rows} rows, {how})"


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
    engine: str = "exact"
    prediction: dict | None = None
    multivariate: dict | None = None
    performance_estimate: dict | None = None
    report_path: str | None = None
    html_path: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready; the parts that were not computed (multivariate, CBPE, HTML) are left out."""
        return {k: v for k, v in asdict(self).items()
                if v is not None or k not in ("multivariate", "performance_estimate", "html_path")}


@dataclass
class _Reference:
    """The champion's training reference: sample, feature lists, full row count, and its bins (None if older)."""

    sample: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    rows: int
    bins: Bins | None

    @classmethod
    def of(cls, registry: Registry, run_id: str) -> _Reference:
        ref, stats = registry.reference(run_id)
        numeric = [c for c, s in stats.items() if s["type"] == "numeric"]
        categorical = [c for c, s in stats.items() if s["type"] == "categorical"]
        n_ref = max(s["count"] + s["nulls"] for s in stats.values())
        return cls(ref, numeric, categorical, n_ref, registry.reference_bins(run_id))


def _current(cfg: ForgeConfig, engine: str, current: str | None, ref: _Reference, pinned: ModelRef, model,
             last: int | None, since_s: float | None, binned: Future | None):
    """(per-feature verdicts, raw rows for the multivariate tests and plots, their scores, the current
    prediction column, label).

    Args:
        binned: for the binned engine, its pass over the current file, already started (`_binned`).
    """
    from forge.monitoring import drift as d

    if engine == "binned":
        detected, rows, label = binned.result()
        rows_pred = rows["score"].to_numpy() if "score" in rows else model.score_value(*model.predict_raw(rows))
        return detected, rows, rows_pred, pd.Series(rows_pred), label
    if engine == "summary":
        cur, label = _summarised(current, ref.numeric, ref.categorical, pinned)
        rows = cur.sample  # raw rows for the multivariate tests, CBPE and the plots: a uniform subsample
        if PREDICTION not in rows:
            rows[PREDICTION] = model.score_value(*model.predict_raw(rows))
        detected = d.detect(ref.sample, cur, ref.numeric, ref.categorical, cfg.monitoring.drift, ref.rows)
        return detected, rows, rows[PREDICTION].to_numpy(), cur[PREDICTION], label
    cur, label = current_window(cfg, current, last, since_s)
    if cur.empty:
        raise UsageError(f"no current data in {label}")
    rows_pred = cur["score"].to_numpy() if "score" in cur else model.score_value(*model.predict_raw(cur))
    detected = d.detect(ref.sample, cur, ref.numeric, ref.categorical, cfg.monitoring.drift, ref.rows)
    return detected, cur, rows_pred, pd.Series(rows_pred), label


def run_drift(cfg: ForgeConfig, current: str | None = None, html_out: str | None = None,
              multivariate: bool = True, last: int | None = None, since_s: float | None = None) -> DriftResult:
    """Drift of `current` (a file or URI; None or "log": the prediction log's window) against the champion."""
    from forge.monitoring.stream import read_ahead

    if current and current != "log" and "://" not in current and not glob.glob(current):
        raise UsageError(f"--current: {current} does not exist")
    # Started before MLflow and SciPy are imported (1.5-2 s that hold the GIL) and the champion resolves.
    ahead = read_ahead(current)
    try:
        result, ref, rows, label = _drift(cfg, current, multivariate, last, since_s, ahead)
    except pa.ArrowInvalid as e:  # a malformed current file: the user's to fix, not a crash
        raise UsageError(f"--current {current}: cannot be read: {e}") from None
    finally:
        if ahead is not None:
            ahead.close()
    path = Workspace.from_config(cfg).reports() / f"drift-{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    result.report_path = str(path)
    path.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    if html_out:
        Path(html_out).write_text(render(result.to_dict(), ref.sample, rows, ref.numeric,
                                         f"Drift: {cfg.name} v{result.model_version} vs {label}"))
        result.html_path = str(Path(html_out).resolve())
    return result


def _drift(cfg: ForgeConfig, current: str | None, multivariate: bool, last: int | None, since_s: float | None,
           ahead: ReadAhead | None) -> tuple[DriftResult, _Reference, pd.DataFrame, str]:
    """(the result, the reference, the current rows behind the plots, the current data's label)."""
    from forge.monitoring import drift as d
    from forge.registry.client import Registry

    registry = Registry.of(cfg)
    pinned = registry.ref()
    ref = _Reference.of(registry, registry.model_version(pinned.version).run_id)
    engine = _engine(cfg, current, ref.bins, ref.rows)
    with ThreadPoolExecutor(1, thread_name_prefix="forge-drift") as bg:
        # The binned pass needs only the reference's bins, so it runs while the champion is unpickled and scores
        # the reference: those hold the GIL, the pass is Arrow and numpy, which release it.
        pending = bg.submit(_binned, cfg, current, ref.bins, ahead) if engine == "binned" else None
        model = pinned.load()
        ref_pred = model.score_value(*model.predict_raw(ref.sample))
        detected, rows, rows_pred, cur_pred, label = _current(cfg, engine, current, ref, pinned, model, last,
                                                              since_s, pending)
    result = DriftResult(**detected, model_name=cfg.name, model_version=pinned.version, current=label, engine=engine)
    result.prediction = d.column_drift(pd.Series(ref_pred), cur_pred, "numeric", cfg.monitoring.drift, ref.rows)
    if multivariate and len(rows) >= 20:
        tests = {"domain_classifier": d.domain_classifier(ref.sample, rows, ref.numeric, ref.categorical),
                 "mmd": d.mmd(ref.sample, rows, ref.numeric) if ref.numeric else None}
        result.multivariate = {k: v for k, v in tests.items() if v}
    if model.task == "classification" and model.classes is not None and len(model.classes) == 2:
        result.performance_estimate = {**estimate(np.asarray(rows_pred, dtype=float)),
                                       "reference": estimate(np.asarray(ref_pred, dtype=float))}
    return result, ref, rows, label
