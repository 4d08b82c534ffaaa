"""forge/monitoring/monitor.py: the prediction-log windows `forge drift` tests, by count or by time."""

import pandas as pd
import pytest

from forge.config import ForgeConfig
from forge.monitoring.monitor import current_window, parse_since
from forge.monitoring.prediction_log import PredictionLogger
from forge.workspace import Workspace


def _log(cfg: ForgeConfig, ages_s: list[float], variant: str = "champion") -> None:
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    log = PredictionLogger(Workspace.from_config(cfg).predictions(cfg.name))
    log.log([{"request_id": f"{variant}{i}", "row": 0, "timestamp": now - pd.Timedelta(seconds=age),
              "model_name": cfg.name, "model_version": "1", "variant": variant, "prediction": 1, "score": 0.5,
              "latency_ms": 1.0, "x": float(age)} for i, age in enumerate(ages_s)])
    log.close()


@pytest.fixture
def cfg(tmp_path):
    c = ForgeConfig(name="m", workspace=str(tmp_path / "ws"), data={"source": "d.csv", "target": "y"},
                    monitoring={"drift": {"window_rows": 4}})
    _log(c, [7200, 3000, 1000, 500, 100, 10])
    _log(c, [5], variant="shadow")  # a shadow's answers are no served traffic
    return c


def test_window_by_count_is_the_newest_rows(cfg):
    df, label = current_window(cfg, None)
    assert list(df["x"]) == [1000.0, 500.0, 100.0, 10.0] and "4 rows" in label  # the shadow's row is no traffic
    assert list(current_window(cfg, None, last=2)[0]["x"]) == [100.0, 10.0]


def test_window_by_time(cfg):
    df, label = current_window(cfg, None, since_s=parse_since("1h"))
    assert sorted(df["x"]) == [10.0, 100.0, 500.0, 1000.0, 3000.0] and "since" in label
    cfg.monitoring.drift.window_s = 200
    assert sorted(current_window(cfg, None)[0]["x"]) == [10.0, 100.0]
    assert len(current_window(cfg, None, last=6)[0]) == 6  # an explicit count wins over the configured time


def test_since_durations():
    assert [parse_since(t) for t in ("90s", "30m", "6h", "7d", "15")] == [90, 1800, 21600, 604800, 15]
    with pytest.raises(ValueError, match="--since 'soon'"):
        parse_since("soon")
