"""forge/serving/alerts.py: which webhook bodies start a retraining check, and the one-per-group-and-window rule.
(The real path, Prometheus -> Alertmanager -> /v1/alerts -> a Ray job -> the gate, is in
tests/monitoring/test_alerting.py; here a recording client stands in for Ray's Jobs API.)"""

import shlex
from types import SimpleNamespace

from forge.config import ForgeConfig
from forge.serving.alerts import start_retraining
from forge.serving.schemas import AlertWebhook


class _Jobs:
    """Ray's Jobs API as far as submission ids go: a second job with the same id is refused, an unknown id is a
    RuntimeError, and a job's start time is in milliseconds. `now` is the clock the jobs start by."""

    def __init__(self):
        self.submitted: dict[str, str] = {}
        self.started_ms: dict[str, int] = {}
        self.now = 0.0

    def submit_job(self, entrypoint: str, submission_id: str, metadata: dict) -> str:
        if submission_id in self.submitted:
            raise RuntimeError(f"Job with submission_id {submission_id} already exists.")
        self.submitted[submission_id] = entrypoint
        self.started_ms[submission_id] = int(self.now * 1000)
        return submission_id

    def get_job_info(self, job_id: str):
        if job_id not in self.started_ms:
            raise RuntimeError(f"Request failed with status code 404: Job {job_id} does not exist.")
        return SimpleNamespace(start_time=self.started_ms[job_id])


def _at(now: float, jobs: _Jobs, body=None, cfg=None) -> dict:
    jobs.now = now
    return start_retraining(cfg or _cfg(), body or _body(), "alertmanager", jobs, now=now)


def _cfg() -> ForgeConfig:
    cfg = ForgeConfig.model_validate({"name": "churn", "data": {"source": "d.csv", "target": "y"},
                                      "monitoring": {"alerts": {"dedup_window_s": 600}}})
    cfg.config_path = __import__("pathlib").Path("/srv/project/forge.yaml")
    return cfg


def _body(alertname="ForgeFeatureDrift", status="firing", group='{}:{application="churn"}; rm -rf /'):
    return AlertWebhook.model_validate({"version": "4", "groupKey": group, "status": status, "receiver": "forge",
                                        "alerts": [{"status": status, "labels": {"alertname": alertname}}]})


def test_a_firing_watched_alert_starts_one_check_per_group_and_window():
    jobs = _Jobs()
    first = _at(1_000, jobs)
    assert first["started"] and len(jobs.submitted) == 1
    argv = shlex.split(jobs.submitted[first["job"]])  # the group key stays one quoted argument
    assert argv[1:4] == ["-m", "forge.cli", "retrain"] and "--if-drift" in argv and "--if-decay" in argv
    assert argv[argv.index("--reason") + 1] == ('alert ForgeFeatureDrift (group {}:{application="churn"}; rm -rf /) '
                                                'from alertmanager')
    again = _at(1_150, jobs)  # 1,000 and 1,150 s: window 1 of 600 s
    assert not again["started"] and again["job"] == first["job"] and len(jobs.submitted) == 1
    other_group = _at(1_150, jobs, _body(group="{}:{application=\"b\"}"))
    later = _at(1_900, jobs)  # window 3
    assert other_group["started"] and later["started"] and len(jobs.submitted) == 3


def test_a_repeat_across_a_window_boundary_starts_nothing_until_a_whole_window_has_passed():
    jobs = _Jobs()
    first = _at(1_190, jobs)  # window 1 (600-1,199 s) of 600 s, ten seconds before its end
    repeat = _at(1_250, jobs)  # window 2, a minute later: the check started in window 1 answers it
    assert first["started"] and not repeat["started"] and repeat["job"] == first["job"], (first, repeat)
    assert not _at(1_789, jobs)["started"]  # 599 s after the first
    assert _at(1_790, jobs)["started"] and len(jobs.submitted) == 2  # a whole window after it


def test_resolved_or_unwatched_alerts_start_nothing():
    jobs, cfg = _Jobs(), _cfg()
    for body in (_body(status="resolved"), _body(alertname="ForgeHighLatencyP99")):
        out = start_retraining(cfg, body, "alertmanager", jobs, now=1_000)
        assert not out["started"] and out["job"] is None
    assert jobs.submitted == {}


def test_an_unreachable_jobs_api_is_a_503_not_a_500():
    import pytest
    from fastapi import HTTPException

    class Down:
        def get_job_info(self, job_id):
            raise ConnectionError("Failed to connect to Ray at address: http://forge-head-svc:8265")

        def submit_job(self, **kwargs):
            raise ConnectionError("Failed to connect to Ray at address: http://forge-head-svc:8265")

    with pytest.raises(HTTPException) as e:
        start_retraining(_cfg(), _body(), "alertmanager", Down(), now=1_000)
    assert e.value.status_code == 503 and "forge-head-svc:8265" in e.value.detail


def test_a_jobs_api_address_that_does_not_answer_is_a_503():
    import pytest
    from fastapi import HTTPException

    cfg = _cfg()
    cfg.monitoring.alerts.job_address = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(HTTPException) as e:
        start_retraining(cfg, _body(), "alertmanager", now=1_000)
    assert e.value.status_code == 503
