"""Metrics of batch jobs, pushed to a Prometheus Pushgateway when the job ends.

A batch job can finish between two scrapes, so it pushes instead of being scraped (the Pushgateway
pattern; Prometheus scrapes the gateway with honor_labels). Grouped by job and project, so each job's
last run is what Prometheus sees: `forge_job_duration_seconds`, `forge_job_success`,
`forge_job_last_run_timestamp_seconds`, `forge_job_last_success_timestamp_seconds` (kept from the last
success when a run fails) and the process's own `process_*` metrics (CPU seconds, resident memory).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def job_metrics(gateway: str | None, job: str, project: str) -> Iterator[None]:
    """Time the body and push its outcome; without a gateway, do nothing. A push failure never fails the job."""
    if not gateway:
        yield
        return
    from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, pushadd_to_gateway

    start, ok = time.time(), False
    try:
        yield
        ok = True
    finally:
        reg = CollectorRegistry()
        ProcessCollector(registry=reg)
        Gauge("forge_job_duration_seconds", "Wall time of the job's last run.", registry=reg).set(time.time() - start)
        Gauge("forge_job_success", "1 when the job's last run succeeded, else 0.", registry=reg).set(int(ok))
        Gauge("forge_job_last_run_timestamp_seconds", "When the job last ended.", registry=reg).set_to_current_time()
        if ok:  # pushadd only replaces the names it sends: a failure leaves the last success's time in place
            Gauge("forge_job_last_success_timestamp_seconds", "When the job last succeeded.",
                  registry=reg).set_to_current_time()
        try:
            pushadd_to_gateway(gateway, job=f"forge_{job}", grouping_key={"project": project}, registry=reg,
                               timeout=5)
        except OSError as e:
            print(f"warning: could not push job metrics to {gateway}: {e}", file=sys.stderr)
