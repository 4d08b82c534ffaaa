"""Alertmanager, real: the routing passes `amtool check-config`, every alert of the rules file routes to the
receiver its severity names, and a real Prometheus evaluating Forge's rules on a running app's metrics, after
shifted traffic, fires an alert that a real Alertmanager delivers to a webhook here, naming the model and the
feature."""

import http.server
import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from forge.config import ForgeConfig
from tests.conftest import ROOT, free_port, require_binary, wait_ready
from tests.monitoring.test_prometheus import _daemon, _loopback_targets
from tests.serving.test_app import _rows

CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "kuberay" / "base" / "prometheus-rules.yaml"
RECEIVER_OF = {"critical": "oncall", "warning": "team", "info": "null"}


def _alerts() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["spec"]["groups"] for r in g["rules"]]


def test_amtool_check_config():
    r = subprocess.run([require_binary("amtool"), "check-config", str(CONFIG)], capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: r["alert"])
def test_every_alert_routes_to_the_receiver_of_its_severity(rule):
    expected = RECEIVER_OF[rule["labels"]["severity"]]
    if rule["alert"] in ForgeConfig.model_validate({"name": "x", "data": {"source": "x.csv", "target": "y"}}
                                                   ).monitoring.alerts.alertnames:
        expected = f"forge,{expected}"  # Forge's own webhook first (retraining), then people
    labels = [f"alertname={rule['alert']}", f"severity={rule['labels']['severity']}", "namespace=forge-prod",
              "application=churn", "model=churn", "feature=usage_hours"]
    r = subprocess.run([require_binary("amtool"), "config", "routes", "test", f"--config.file={CONFIG}",
                        f"--verify.receivers={expected}", *labels], capture_output=True, text=True)
    assert r.returncode == 0, (rule["alert"], r.stdout, r.stderr)


class _Inbox(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Inbox.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Inbox)
    _Inbox.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _stack(folder: Path, webhook: str, app: str, admin_token: str):
    """Forge's rules (each `for` cut to 0s: promtool's unit tests hold the durations) in a Prometheus that
    scrapes the session cluster and sends to an Alertmanager running Forge's routing (group_wait cut, people's
    receivers pointed at the webhook here, Forge's at the app with an admin token)."""
    from ray._private.worker import _global_node

    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    for g in groups:
        for r in g["rules"]:
            r["for"] = "0s"
    (folder / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    am = yaml.safe_load(CONFIG.read_text())
    am["route"]["group_wait"] = "1s"
    for route in am["route"]["routes"]:
        route.pop("group_wait", None)
    for receiver in am["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{app}/v1/alerts" if receiver["name"] == "forge" else f"{webhook}/{receiver['name']}"
    (folder / "forge-admin.token").write_text(admin_token)  # credentials_file: relative to the config's folder
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(am))
    sd = Path(_global_node.get_session_dir_path()) / "prom_metrics_service_discovery.json"
    _loopback_targets(sd, folder / "targets.json")
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(folder / "rules.yml")],
        "scrape_configs": [{"job_name": "ray", "file_sd_configs": [{"files": [str(folder / "targets.json")]}]}],
    }))


def _watched_project(cfg, folder: Path) -> Path:
    """The session project's config with its own prediction log, live drift every second, a one-trial search
    and a gate that cannot pass: what alerts start here must not change the champion other tests serve."""
    raw = yaml.safe_load(cfg.config_path.read_text())
    raw.setdefault("monitoring", {}).setdefault("drift", {})["live_interval_s"] = 1.0
    raw["monitoring"]["prediction_log"] = {"path": str(folder / "log"), "flush_interval_s": 0.5}
    raw["training"] = {**raw.get("training", {}), "num_samples": 1, "models": ["logistic_regression"]}
    raw["registry"] = {"gate": {"min_improvement": 1.0}}
    raw["serving"] = {**raw["serving"], "autoscaling": {"min_replicas": 1, "max_replicas": 1}}
    path = cfg.config_path.parent / "forge-alerts.yaml"  # beside the original: its relative paths still hold
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.integration
def test_drift_alerts_reach_people_and_start_one_retraining_down_to_the_gate(served, auth_headers, webhook,
                                                                              tmp_path):
    from ray import serve

    from forge.config import load_config
    from forge.serving.app import build_app

    cfg, url = served
    watched = load_config(_watched_project(cfg, tmp_path))
    base, h = f"{url}/alerts", auth_headers()
    _stack(tmp_path, webhook, base, auth_headers(("admin",))["Authorization"].removeprefix("Bearer "))
    serve.run(build_app(watched), name="churn-alerts", route_prefix="/alerts", blocking=False)
    am_args = [f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am'}",
               "--cluster.listen-address="]
    try:
        assert wait_ready(f"{base}/readyz", 90), "the watched app did not come up"
        with _daemon("prometheus-alertmanager", *am_args) as am:
            prom = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
            prom["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [am.removeprefix("http://")]}]}]}
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom))
            with _daemon("prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                         f"--storage.tsdb.path={tmp_path / 'data'}"):
                path, payload, labels = _drive_until_delivered(base, h, cfg)
                job = _retraining_job(watched)
        assert path == "/team" and payload["status"] == "firing" and payload["receiver"] == "team", payload
        assert labels["model"] == "churn" and labels["feature"] in SHIFTED, labels
        assert labels["severity"] == "warning" and "drifted" in payload["commonAnnotations"]["summary"], payload
        _check_recorded(watched, job)
        again = {"version": "4", "groupKey": job.metadata["forge.group_key"], "status": "firing",
                 "receiver": "forge", "alerts": [{"status": "firing", "labels": {"alertname": "ForgeFeatureDrift"}}]}
        r = httpx.post(f"{base}/v1/alerts", json=again, headers=auth_headers(("admin",)), timeout=30)
        assert r.status_code == 200 and r.json()["started"] is False and r.json()["job"] == job.submission_id
        assert httpx.post(f"{base}/v1/alerts", json=again, headers=h, timeout=30).status_code == 403
    finally:
        serve.delete("churn-alerts")


SHIFTED = ("usage_hours", "monthly_spend", "tenure_months", "support_tickets", "age")


def _drive_until_delivered(base: str, headers: dict, cfg, timeout: float = 150):
    """Shifted rows (five of eight features far from training) until the drift alert reaches the inbox."""
    deadline, seed = time.time() + timeout, 0
    while time.time() < deadline:
        rows = _rows(cfg, 100, seed=5000 + seed)
        for r in rows:
            for col in SHIFTED:
                if r[col] is not None:
                    r[col] = r[col] * 3 + 60
        assert httpx.post(f"{base}/v1/predict", json={"instances": rows}, headers=headers, timeout=30).status_code == 200
        seed += 1
        for path, payload in _Inbox.received:
            for a in payload["alerts"]:
                if a["labels"].get("alertname") == "ForgeFeatureDrift" \
                        and a["labels"].get("application") == "churn-alerts":
                    return path, payload, a["labels"]
        time.sleep(1)
    raise AssertionError(f"no ForgeFeatureDrift alert delivered in {timeout:.0f} s: {_Inbox.received}")


def _retraining_job(cfg, timeout: float = 400):
    """The one retraining check the alerts started, once it has finished."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient()
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = [j for j in client.list_jobs() if (j.submission_id or "").startswith(f"forge-retrain-{cfg.name}-")]
        if jobs and jobs[0].status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            assert len(jobs) == 1, [j.submission_id for j in jobs]  # one per group and window
            assert jobs[0].status == JobStatus.SUCCEEDED, client.get_job_logs(jobs[0].submission_id)[-3000:]
            return jobs[0]
        time.sleep(2)
    raise AssertionError("no retraining job finished")


def _check_recorded(cfg, job) -> None:
    """The run in MLflow names the alert and who sent it, and carries the gate's decision."""
    from forge.training import tracking

    client = tracking.client(cfg)
    exp = client.get_experiment_by_name(cfg.name)
    runs = client.search_runs([exp.experiment_id], "tags.`forge.retrain.reason` LIKE 'alert %'")
    mine = [r for r in runs if job.metadata["forge.group_key"] in r.data.tags["forge.retrain.reason"]]
    assert len(mine) == 1, [r.data.tags for r in runs]
    tags = mine[0].data.tags
    assert "ForgeFeatureDrift" in tags["forge.retrain.reason"] and "from t" in tags["forge.retrain.reason"], tags
    # the drift the alert reported is confirmed on the prediction log, the model trained, and the gate decided
    assert tags["forge.retrain.trigger"].startswith("drift"), tags
    assert tags["forge.retrain.outcome"] == "kept the champion (gate)", tags
