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


def _stack(folder: Path, webhook: str):
    """Forge's rules (each `for` cut to 0s: promtool's unit tests hold the durations) in a Prometheus that
    scrapes the session cluster and sends to an Alertmanager running Forge's routing (group_wait cut, receivers
    pointed at the webhook)."""
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
            hook["url"] = f"{webhook}/{receiver['name']}"
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(am))
    sd = Path(_global_node.get_session_dir_path()) / "prom_metrics_service_discovery.json"
    _loopback_targets(sd, folder / "targets.json")
    return groups


def test_shifted_traffic_fires_an_alert_that_reaches_the_webhook(served, auth_headers, webhook, tmp_path):
    from ray import serve

    from forge.serving.app import build_app

    cfg, url = served
    watched = cfg.model_copy(deep=True)
    watched.monitoring.drift.live_interval_s = 1.0
    watched.serving.autoscaling.min_replicas = watched.serving.autoscaling.max_replicas = 1
    _stack(tmp_path, webhook)
    serve.run(build_app(watched), name="churn-alerts", route_prefix="/alerts", blocking=False)
    base, h = f"{url}/alerts", auth_headers()
    am_args = [f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am'}",
               "--cluster.listen-address="]
    try:
        assert wait_ready(f"{base}/readyz", 90), "the watched app did not come up"
        with _daemon("prometheus-alertmanager", *am_args) as am:
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.removeprefix("http://")]}]}]},
                "scrape_configs": [{"job_name": "ray", "file_sd_configs": [{"files": [str(tmp_path / "targets.json")]}]}],
            }))
            with _daemon("prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                         f"--storage.tsdb.path={tmp_path / 'data'}"):
                alert = _drive_until_delivered(base, h, cfg)
    finally:
        serve.delete("churn-alerts")
    path, payload, labels = alert
    assert path == "/team" and payload["status"] == "firing" and payload["receiver"] == "team", payload
    assert labels["model"] == "churn" and labels["feature"] in ("usage_hours", "monthly_spend"), labels
    assert labels["severity"] == "warning" and "drifted" in payload["commonAnnotations"]["summary"], payload


def _drive_until_delivered(base: str, headers: dict, cfg, timeout: float = 150):
    """Shifted rows (usage and spend far above training) until the drift alert of this app reaches the inbox."""
    deadline, seed = time.time() + timeout, 0
    while time.time() < deadline:
        rows = _rows(cfg, 100, seed=5000 + seed)
        for r in rows:
            if r["usage_hours"] is not None:
                r["usage_hours"] = r["usage_hours"] * 3 + 60
            if r["monthly_spend"] is not None:
                r["monthly_spend"] = r["monthly_spend"] + 250
        assert httpx.post(f"{base}/v1/predict", json={"instances": rows}, headers=headers, timeout=30).status_code == 200
        seed += 1
        for path, payload in _Inbox.received:
            for a in payload["alerts"]:
                if a["labels"].get("alertname") == "ForgeFeatureDrift" \
                        and a["labels"].get("application") == "churn-alerts":
                    return path, payload, a["labels"]
        time.sleep(1)
    raise AssertionError(f"no ForgeFeatureDrift alert delivered in {timeout:.0f} s: {_Inbox.received}")
