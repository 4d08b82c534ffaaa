"""A real Prometheus scrapes the running app through Ray's metrics endpoint; dashboards and rules only use
names it actually scraped, and every expression parses."""

import json
import re
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, free_port, require_binary, run_cli, wait_ready
from tests.serving.test_app import _rows

pytestmark = pytest.mark.integration
FORGE_METRICS = ["ray_forge_predictions_total", "ray_forge_prediction_errors_total",
                 "ray_forge_prediction_latency_ms_bucket", "ray_forge_prediction_score_bucket",
                 "ray_forge_feature_drift_score", "ray_forge_dataset_drift_share", "ray_forge_model_info",
                 "ray_forge_estimated_performance", "ray_forge_unknown_category_total", "ray_forge_feature_drifted"]


def _loopback_targets(sd_file: Path, out: Path) -> None:
    """Ray's service-discovery file, pointed at 127.0.0.1 where the endpoint answers there."""
    groups = json.loads(sd_file.read_text())
    for g in groups:
        new = []
        for t in g["targets"]:
            port = int(t.rsplit(":", 1)[1])
            with socket.socket() as s:
                s.settimeout(1)
                new.append(f"127.0.0.1:{port}" if s.connect_ex(("127.0.0.1", port)) == 0 else t)
        g["targets"] = new
    out.write_text(json.dumps(groups))


@pytest.fixture(scope="module")
def pushgateway():
    """A real Pushgateway (Debian prometheus-pushgateway) on loopback, where batch jobs push their metrics."""
    with _daemon("prometheus-pushgateway") as url:
        yield url


@contextmanager
def _daemon(name: str, *args: str):
    """A Prometheus-family server on a free loopback port, stopped afterwards; yields its URL."""
    binary = require_binary(name)
    port = free_port()
    proc = subprocess.Popen([binary, *args, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_ready(f"{url}/-/ready", 30), f"{name} did not start"
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def prometheus(served, tmp_path_factory, ray_session, pushgateway):
    folder = tmp_path_factory.mktemp("prom")
    # The session cluster's own file: /tmp/ray/prom_metrics_service_discovery.json is a link that the last
    # `ray start` on this machine (the multi-node tests' clusters) repoints at its own, dead, session.
    from ray._private.worker import _global_node

    sd = Path(_global_node.get_session_dir_path()) / "prom_metrics_service_discovery.json"
    deadline = time.time() + 30
    while not sd.exists() and time.time() < deadline:
        time.sleep(1)
    _loopback_targets(sd, folder / "targets.json")
    PROM_TARGETS[:] = [str(folder / "targets.json")]
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "scrape_configs": [
            {"job_name": "ray", "file_sd_configs": [{"files": [str(folder / "targets.json")]}]},
            # batch jobs' own job/project labels win over the gateway's, as the Pushgateway docs ask
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [pushgateway.removeprefix("http://")]}]},
        ],
    }))
    with _daemon("prometheus", f"--config.file={folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={folder / 'data'}") as url:
        yield url


def _names(prom: str) -> set[str]:
    return set(httpx.get(f"{prom}/api/v1/label/__name__/values", timeout=10).json()["data"])


# What `scraped` sends: 15 requests of 10 rows, then 2 rows with an unseen region; one request without a token.
SENT_ROWS = 15 * 10 + 2
PREDICTED, UNSEEN = "sum(ray_forge_predictions_total)", 'sum(ray_forge_unknown_category_total{feature="region"})'
PROM_TARGETS: list[str] = []  # the targets file the module's Prometheus reads


@pytest.fixture(scope="module")
def scraped(prometheus, served, auth_headers_module):
    """The app's metrics once Prometheus has scraped what this fixture sent: (names, predictions counted before)."""
    cfg, url = served
    h = auth_headers_module
    before = _settled(prometheus, (PREDICTED, UNSEEN))
    for i in range(15):  # 150 rows: enough for the replica's drift window to compute
        r = httpx.post(f"{url}/v1/predict", json={"instances": _rows(cfg, 10, seed=1000 + i)}, headers=h, timeout=30)
        assert r.status_code == 200, r.text
    r = httpx.post(f"{url}/v1/predict", json={"instances": _rows(cfg, 1)}, timeout=30)
    assert r.status_code == 401, r.text  # counted as an error: ray_forge_prediction_errors_total
    # A region training never saw: served (observed categories are no rule) and counted.
    unseen = [{**row, "region": "atlantis"} for row in _rows(cfg, 2, seed=7)]
    assert httpx.post(f"{url}/v1/predict", json={"instances": unseen}, headers=h, timeout=30).status_code == 200
    deadline = time.time() + 90
    names: set[str] = set()
    while time.time() < deadline:
        names = _names(prometheus)
        if all(m in names for m in FORGE_METRICS) and _value(prometheus, PREDICTED) >= before[PREDICTED] + SENT_ROWS:
            break
        time.sleep(2)
    return names, before


def _settled(prom: str, exprs: tuple[str, ...], timeout: float = 120) -> dict[str, float]:
    """The values of `exprs` once they stand still: every Ray target scraped, and the same over more than one of
    Ray's metric report intervals (2 s here, conftest) and scrapes (2 s), so nothing an earlier test sent is still
    on its way (0 where no series)."""
    targets = sum(len(g["targets"]) for g in json.loads(Path(PROM_TARGETS[0]).read_text()))
    deadline = time.time() + timeout
    while time.time() < deadline and len(_query(prom, 'up{job="ray"}')) < targets:
        time.sleep(1)
    last = None
    while time.time() < deadline:
        now = {e: _value(prom, e) for e in exprs}
        if now == last:
            return now
        last = now
        time.sleep(5)
    raise AssertionError(f"{exprs} did not settle in {timeout:.0f} s: {last}")


def _value(prom: str, expr: str) -> float:
    result = _query(prom, expr)
    return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def auth_headers_module(served):
    from forge.serving.auth import Settings, create_token

    cfg, _ = served
    return {"Authorization": f"Bearer {create_token(Settings.from_config(cfg.serving.auth), 't', ['predict'])}"}


def test_every_forge_metric_is_scraped(scraped, prometheus, served):
    scraped, before = scraped
    missing = [m for m in FORGE_METRICS if m not in scraped]
    assert not missing, missing
    # the dashboards' and rules' `application` filter and grouping rest on Serve tagging replica metrics with it
    for name in ("ray_forge_predictions_total", "ray_forge_model_info", "ray_serve_num_http_requests_total",
                 "ray_serve_deployment_replica_healthy"):
        # the controller reports replica health on its own period: wait for a scrape that has it
        deadline = time.time() + 30
        while not _query(prometheus, f'{name}{{application="{served[0].name}"}}') and time.time() < deadline:
            time.sleep(2)
        assert _query(prometheus, f'{name}{{application="{served[0].name}"}}'), f"{name} carries no application label"
    # exactly the rows this module's requests were answered for, whatever other tests sent before
    assert _value(prometheus, PREDICTED) - before[PREDICTED] == SENT_ROWS
    live = {s["metric"]["version"] for s in _query(prometheus, f'ray_forge_model_info{{model="{served[0].name}"}} == 1')}
    assert httpx.get(f"{served[1]}/readyz", timeout=10).json()["version"] in live, live
    assert _value(prometheus, UNSEEN) - before[UNSEEN] == 2  # the two rows with the unseen region
    # One score observed per served row: the histogram's count is the predictions counter (observe_many records
    # a request's scores through Ray's recorder, not observe(), so a lost or doubled value would show here).
    deadline, pair = time.time() + 40, None
    while time.time() < deadline:
        pair = [_query(prometheus, f"sum({m})") for m in ("ray_forge_prediction_score_count",
                                                           "ray_forge_predictions_total")]
        if all(pair) and pair[0][0]["value"][1] == pair[1][0]["value"][1]:
            break
        time.sleep(2)
    assert all(pair) and pair[0][0]["value"][1] == pair[1][0]["value"][1], pair


def _expressions() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for t in panel.get("targets", []):
                # as Grafana sends it with "All" picked (allValue .*, which also matches an absent label)
                expr = t["expr"].replace("$namespace", ".*").replace("$application", ".*")
                out.append((f"{path.name}:{panel['title']}", expr))
    rules = yaml.safe_load((ROOT / "kuberay" / "base" / "prometheus-rules.yaml").read_text())
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            out.append((f"rule:{rule['alert']}", rule["expr"]))
    return out


def test_dashboards_and_rules_parse_and_use_only_scraped_names(scraped, prometheus):
    scraped, _ = scraped
    exprs = _expressions()
    assert len(exprs) >= 15
    for where, expr in exprs:
        r = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert r["status"] == "success", (where, r)
        for name in set(re.findall(r"\bray_[a-zA-Z0-9_]+", expr)):
            assert name in scraped, f"{where} uses {name}, which the running app does not export"


def _query(prom: str, expr: str) -> list[dict]:
    return httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()["data"]["result"]


def test_batch_jobs_push_run_and_process_metrics(prometheus, pushgateway, trained_project):
    cfg, _ = trained_project
    env = {"FORGE_MONITORING__PUSHGATEWAY": pushgateway}
    ok = run_cli("drift", "--current", cfg.resolve(cfg.data.source), "-c", str(cfg.config_path), "--json", env=env)
    assert ok.returncode == 0, ok.stderr  # without --fail-on-drift, drift found or not is exit 0
    sel = f'{{job="forge_drift",project="{cfg.name}"}}'

    def scraped(expr: str, want) -> list[dict] | None:
        """The query's result once `want` holds for it; None if it never did within 30 s."""
        deadline = time.time() + 30
        while time.time() < deadline:
            res = _query(prometheus, expr)
            if res and want(float(res[0]["value"][1])):
                return res
            time.sleep(1)
        return None

    assert scraped(f"forge_job_success{sel}", lambda v: v == 1), "the successful run was not scraped"
    succeeded_at = float(_query(prometheus, f"forge_job_last_success_timestamp_seconds{sel}")[0]["value"][1])
    assert float(_query(prometheus, f"forge_job_duration_seconds{sel}")[0]["value"][1]) > 0
    assert float(_query(prometheus, f"process_resident_memory_bytes{sel}")[0]["value"][1]) > 50e6
    assert float(_query(prometheus, f"process_cpu_seconds_total{sel}")[0]["value"][1]) > 0

    bad = run_cli("drift", "--current", "/nonexistent/window.csv", "-c", str(cfg.config_path), env=env)
    assert bad.returncode == 2 and "does not exist" in bad.stderr, bad.stderr
    assert scraped(f"forge_job_success{sel}", lambda v: v == 0), "the failed run was not scraped"
    # a failure keeps the time of the last success: an alert can say how long a job has been failing
    after = float(_query(prometheus, f"forge_job_last_success_timestamp_seconds{sel}")[0]["value"][1])
    assert after == succeeded_at


def test_every_metric_the_docs_name_is_scraped(scraped):
    """The README and docs/ name Forge's metrics as Prometheus shows them (tests/test_docs.py); each is one this
    Prometheus scraped from the running app (a histogram by its base name: its _bucket series)."""
    from tests.test_docs import DOCS

    scraped, _ = scraped
    named = {m for doc in DOCS for m in re.findall(r"\bray_forge_[a-z_]+", doc.read_text())}
    assert named, "the docs name no metric"
    missing = sorted(m for m in named if m not in scraped and f"{m}_bucket" not in scraped)
    assert not missing, f"the docs name metrics the running app does not export: {missing}"
