"""Alerts that close the loop: Alertmanager's webhook starts a retraining check as a Ray job.

The check (`forge retrain --if-drift --if-decay`) runs as a Ray job, never inside the request: it validates,
trains and gates for minutes. The job's submission id is made of the project, the alert group and the time
window, and Ray refuses a second job with the same id, so one group starts at most one check per window,
whichever replica took the webhook and however often Alertmanager repeats it.

The window slides: a check the group started in the window before, less than `dedup_window_s` ago, also
answers a repeat. Fixed windows alone let an alert at 15:59 and its repeat at 16:00 start two checks a minute
apart; CI caught exactly that. Only two deliveries of one group racing across a window's end, each to another
replica, could still start two: the look at the window before and the submission are two calls.

The reason handed to the job (which alert, which group, which token's subject) is recorded on the MLflow run
with the outcome.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from typing import Any

from fastapi import HTTPException

from forge.config import ForgeConfig
from forge.serving.schemas import AlertWebhook

_REPEAT = "this alert group already started a check in this window"


def _submission_id(cfg: ForgeConfig, group_key: str, window: int) -> str:
    digest = hashlib.sha256(group_key.encode()).hexdigest()[:16]
    return f"forge-retrain-{cfg.name}-{digest}-{window}"


def _recent(client: Any, job: str, since: float) -> bool:
    """Whether `job` exists and started after `since` (seconds). Ray answers an unknown id with a
    RuntimeError, as it does a failed request: either way no such job is known, and a Jobs API that is down
    fails the submission that follows."""
    try:
        started_ms = client.get_job_info(job).start_time
    except RuntimeError:
        return False
    return started_ms is not None and started_ms / 1000 > since


def start_retraining(cfg: ForgeConfig, body: AlertWebhook, who: str, client: Any = None,
                     now: float | None = None) -> dict:
    """Submit the retraining check a firing group of watched alerts asks for; says what it did.

    Args:
        client: a `ray.job_submission.JobSubmissionClient` (default: one for `monitoring.alerts.job_address`).
    """
    watched = cfg.monitoring.alerts.alertnames
    names = sorted({a.labels.get("alertname", "") for a in body.alerts if a.status == "firing"} & set(watched))
    if body.status != "firing" or not names:
        return {"started": False, "job": None, "detail": f"no firing alert of {', '.join(watched)}"}
    now = time.time() if now is None else now
    window_s = cfg.monitoring.alerts.dedup_window_s
    window = int(now // window_s)
    job, before = _submission_id(cfg, body.groupKey, window), _submission_id(cfg, body.groupKey, window - 1)
    reason = f"alert {','.join(names)} (group {body.groupKey}) from {who}"
    entrypoint = shlex.join([sys.executable, "-m", "forge.cli", "retrain", "-c", str(cfg.config_path),
                             "--if-drift", "--if-decay", "--reason", reason, "--json"])
    try:
        if client is None:  # it connects here: an unreachable address fails as a submission does
            from ray.job_submission import JobSubmissionClient

            client = JobSubmissionClient(cfg.monitoring.alerts.job_address)
        if _recent(client, before, now - window_s):
            return {"started": False, "job": before, "detail": _REPEAT}
        client.submit_job(entrypoint=entrypoint, submission_id=job,
                          metadata={"forge.trigger": "alert", "forge.alerts": ",".join(names),
                                    "forge.group_key": body.groupKey})
    except (RuntimeError, OSError) as e:  # OSError: requests' connection errors as well as the builtin ones
        if "already exists" in str(e):
            return {"started": False, "job": job, "detail": _REPEAT}
        # Alertmanager retries a 5xx; a 503 says the Jobs API, not the request, is the problem
        raise HTTPException(503, f"cannot submit the retraining check to the Ray Jobs API: {e}") from None
    return {"started": True, "job": job, "detail": reason}
