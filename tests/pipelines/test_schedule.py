"""forge/pipelines/schedule.py: the local equivalent of the retraining CronJob."""

from datetime import UTC, datetime

import pytest
import yaml

from forge.config import ConfigError, load_config
from forge.pipelines.schedule import next_fire, run_schedule


def test_cron_fires_at_the_next_matching_minute_in_utc():
    after = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    assert next_fire("0 3 * * *", after) == datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert next_fire("*/15 * * * *", datetime(2026, 11, 28, 3, 7, tzinfo=UTC)).minute == 15
    assert next_fire("0 6 * * mon", after).weekday() == 0


def test_schedule_waits_then_runs_and_survives_a_failed_check():
    slept, calls = [], []

    def job():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("mlflow unreachable")
        return {"triggered": False, "reason": "no drift"}

    out = run_schedule(job, "0 3 * * *", every_s=0.05, max_runs=3, sleep=slept.append)
    assert [r.get("error") for r in out["runs"]] == [None, "RuntimeError: mlflow unreachable", None]
    assert out["runs"][0]["reason"] == "no drift" and out["schedule"] == "every 0.05 s"
    assert slept and all(0 < s <= 0.05 for s in slept)


def test_cron_schedule_sleeps_until_the_fire_time():
    slept = []

    def fake_sleep(s):  # time only moves forward when the scheduler sleeps: jump to the fire time
        slept.append(s)
        raise StopIteration

    with pytest.raises(StopIteration):
        run_schedule(lambda: {}, "0 3 * * *", max_runs=1, sleep=fake_sleep)
    now = datetime.now(UTC)
    expected = (next_fire("0 3 * * *", now) - now).total_seconds()
    assert slept[0] == pytest.approx(min(expected, 30.0), abs=2)


def test_bad_cron_names_the_key_and_file(tmp_path):
    path = tmp_path / "forge.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "data": {"source": "d.csv", "target": "y"},
                                    "retraining": {"schedule": "every day at 3"}}))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "retraining.schedule" in str(e.value) and str(path) in str(e.value)
