"""Scheduled retraining on one machine: the local equivalent of the CronJob in kuberay/.

`forge retrain --schedule` sleeps until the next time `retraining.schedule` (cron, UTC like the
CronJob's controller) fires, runs one retraining check, and repeats. A failed tick is recorded and the
schedule goes on, as a CronJob would start the next job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from forge._cron import cron_trigger
from forge._runtime import silent


def next_fire(expr: str, after: datetime) -> datetime:
    """The first time after `after` that the cron expression fires."""
    return cron_trigger(expr).get_next_fire_time(None, after + timedelta(microseconds=1))


def run_schedule(job: Callable[[], dict], cron: str, every_s: float | None = None, max_runs: int | None = None,
                 say: Callable[[str], None] = silent, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Run `job` at each fire time of `cron` (or every `every_s` seconds) until `max_runs` (None: forever).

    Returns:
        {"schedule": what was followed, "runs": [{"at": ISO time, **job result or "error"}]}
    """
    trigger = None if every_s else cron_trigger(cron)
    plan = f"every {every_s:g} s" if every_s else f"cron {cron!r} (UTC)"
    runs: list[dict] = []
    while max_runs is None or len(runs) < max_runs:
        now = datetime.now(UTC)
        due = now + timedelta(seconds=every_s) if every_s else trigger.get_next_fire_time(None, now)
        say(f"schedule: {plan}; next check at {due.isoformat(timespec='seconds')}")
        while (left := (due - datetime.now(UTC)).total_seconds()) > 0:
            sleep(min(left, 30.0))
        at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            res = job()
            res = res.to_dict() if hasattr(res, "to_dict") else res  # typed results become JSON here
        except Exception as e:  # noqa: BLE001 - the next tick must still come
            res = {"error": f"{type(e).__name__}: {e}"}
            say(f"schedule: check at {at} failed: {res['error']}")
        runs.append({"at": at, **res})
    return {"schedule": plan, "runs": runs}
