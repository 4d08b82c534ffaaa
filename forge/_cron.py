"""Crontab expressions (minute hour day month day-of-week, UTC), for the config's validator and the scheduler."""

from __future__ import annotations

from datetime import UTC


def cron_trigger(expr: str):
    """APScheduler's crontab parser, in UTC like the CronJob controller.

    Raises:
        ValueError: the expression is not a valid crontab line.
    """
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(expr, timezone=UTC)
