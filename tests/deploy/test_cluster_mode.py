"""Cluster mode, proven: a head and two workers (`ray start`, token auth) with every piece of state on S3 (moto)
and MLflow as a server (PostgreSQL backend, artifacts proxied to S3). Each step is a `ray job submit` with a
working folder of its own, so nothing can pass through a shared local folder:
pipeline job -> `serve deploy` -> HTTP traffic -> `forge drift` job on the S3 prediction log -> `forge retrain`
job -> the live app swaps to the new version."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pyarrow.fs as pafs
import pytest
import yaml

from forge.data import synthetic
from tests.conftest import ROOT, free_port, wait_ready
from tests.deploy.test_cluster import BIN, _auth, _restore_current_cluster, _start, _stop, _tasks
from tests.servers import start_mlflow, start_postgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]
AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
FEATURES = ["usage_hours", "monthly_spend", "tenure_months", "support_tickets", "age", "region", "plan", "discount"]


@pytest.fixture(scope="module")
def stack(s3_server):
    """PostgreSQL, the S3 buckets and `mlflow server`: the parts a cluster's jobs share, none of them a disk."""
    endpoint = f"http://{s3_server}"
    fs = pafs.S3FileSystem(endpoint_override=s3_server, scheme="http", access_key="test", secret_key="test",
                           region="us-east-1", allow_bucket_creation=True)
    for bucket in ("forge-cluster", "forge-mlflow"):
        fs.create_dir(bucket)
    pg = start_postgres()
    server = start_mlflow(pg.url, "s3://forge-mlflow/artifacts", endpoint, AWS)
    try:
        yield {"endpoint": endpoint, "fs": fs, "mlflow": server.url}
    finally:
        server.stop()
        pg.stop()


@pytest.fixture(scope="module")
def three_nodes(stack, tmp_path_factory):
    import os

    gcs, dash, client = free_port(), free_port(), free_port()
    local = tmp_path_factory.mktemp("node-disks")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # The nodes hold the object-store credentials, as pods would from a Secret; MLflow's artifacts go through
    # the tracking server, so no node has (or needs) the forge-mlflow bucket's endpoint.
    env.update(AWS, RAY_AUTH_MODE="token", FORGE_DEBUG="1", PATH=f"{BIN}:{env.get('PATH', '')}")
    procs = [_start(["--head", f"--port={gcs}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
                     f"--ray-client-server-port={client}", "--num-cpus=1", f"--object-store-memory={300 << 20}"],
                    env)]
    dashboard = f"http://127.0.0.1:{dash}"
    try:
        assert wait_ready(f"{dashboard}/api/version", 180, headers=_auth()), "head node did not start"
        cluster = {"dashboard": dashboard, "env": env, "procs": procs, "gcs": f"127.0.0.1:{gcs}", "local": local}
        for i in (1, 2):
            _worker(cluster, i)
        assert _alive(dashboard) == 3, "the workers did not join"
        yield cluster
    finally:
        for proc in reversed(procs):
            _stop(proc)
        _restore_current_cluster()


@pytest.fixture(autouse=True)
def _free_cluster(three_nodes):
    """Whatever a test leaves running (a failed one, mid-way) is stopped: the three nodes have one CPU each, and
    a Serve app or a search left behind would starve the next test into a slow, misleading failure."""
    yield
    jobs = httpx.get(f"{three_nodes['dashboard']}/api/jobs/", headers=_auth(), timeout=30).json()
    for job in jobs:
        if job.get("status") in ("PENDING", "RUNNING") and job.get("submission_id"):
            httpx.post(f"{three_nodes['dashboard']}/api/jobs/{job['submission_id']}/stop", headers=_auth(), timeout=30)
    _serve_shutdown(three_nodes)
    for i in (1, 2):
        if _node_id(three_nodes, i) is None:  # a node a failed test killed and did not bring back
            _revive(three_nodes, i)


def _worker(cluster: dict, i: int) -> None:
    """Worker node i: one CPU, a resource `node<i>` to pin work to it, and a disk of its own (FORGE_LOCAL_DIR,
    where its replicas keep their write-ahead segments), as a pod with a node-local volume would have."""
    env = {**cluster["env"], "FORGE_LOCAL_DIR": str(cluster["local"] / f"node{i}")}
    for _ in range(3):  # a port taken between picking and binding fails a start: try again
        cluster["procs"].append(_start([f"--address={cluster['gcs']}", "--num-cpus=1", "--object-store-memory="
                                        f"{300 << 20}", f'--resources={{"node{i}": 1}}'], env))
        cluster[f"node{i}"] = cluster["procs"][-1]
        deadline = time.time() + 90
        while time.time() < deadline and _node_id(cluster, i) is None:
            time.sleep(1)
        if _node_id(cluster, i):
            return
        _stop(cluster["procs"].pop())
    raise AssertionError(f"worker node{i} did not join")


def _alive(dashboard: str) -> int:
    try:
        nodes = httpx.get(f"{dashboard}/nodes?view=summary", headers=_auth(), timeout=5).json()["data"]["summary"]
        return sum(n["raylet"]["state"] == "ALIVE" for n in nodes)
    except Exception:
        return 0


def _folder(tmp_path: Path, name: str, cfg: dict) -> Path:
    """A job's own working folder: forge.yaml and the jobs/ entrypoints, nothing else."""
    wd = tmp_path / name
    wd.mkdir()
    (wd / "forge.yaml").write_text(yaml.safe_dump(cfg))
    shutil.copytree(ROOT / "jobs", wd / "jobs")
    return wd


def _submit(cluster: dict, wd: Path, *args: str, timeout: int = 900) -> dict:
    cmd = [str(BIN / "ray"), "job", "submit", "--address", cluster["dashboard"], "--working-dir", str(wd), "--",
           *args]
    for _ in range(12):  # the job agent comes up a little after the dashboard answers
        r = subprocess.run(cmd, cwd=wd, env=cluster["env"], capture_output=True, text=True, timeout=timeout)
        if "No available agent" not in r.stderr + r.stdout:
            break
        time.sleep(5)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])


@pytest.mark.timeout(900)  # four jobs and a deploy on three nodes: 270-410 s here
def test_pipeline_serve_drift_retrain_swap_with_all_state_on_s3(stack, three_nodes, tmp_path):
    fs, port = stack["fs"], free_port()
    with fs.open_output_stream("forge-cluster/raw/churn.csv") as f:
        f.write(synthetic.generate(1500, seed=11).to_csv(index=False).encode())
    cfg = {"name": "churn", "workspace": "s3://forge-cluster/ws", "tracking_uri": stack["mlflow"],
           "object_store": {"endpoint_url": stack["endpoint"]},
           "data": {"source": "s3://forge-cluster/raw/churn.csv", "target": "churned", "timestamp": "event_time",
                    "entity": "customer_id"},
           "training": {"num_samples": 3, "max_concurrent": 2, "max_epochs": 2, "scheduler": "none",
                        "models": {"logistic_regression": {}, "mlp": {"hidden": 16, "layers": 1}}},
           "registry": {"gate": {"min_improvement": -1.0}},  # the retraining's gate passes: the swap is the point
           "serving": {"host": "127.0.0.1", "port": port, "model_poll_s": 1, "replica_cpus": 0.25},
           "monitoring": {"prediction_log": {"flush_interval_s": 0.5}, "drift": {"window_rows": 200}}}
    started = time.time()

    out = _submit(three_nodes, _folder(tmp_path, "pipeline", cfg), "python", "jobs/pipeline.py", "-c", "forge.yaml",
                  "--json")
    assert out["promoted"] and out["model_version"] == "1" and out["trials"] == 3

    serve_cfg = yaml.safe_load((ROOT / "serve_apps" / "forge.yaml").read_text())
    serve_cfg["http_options"] = {"host": "127.0.0.1", "port": port}
    serve_cfg["applications"][0].pop("deployments")  # this test's forge.yaml sizes the deployment
    serve_cfg["applications"][0]["args"]["config"] = str(_folder(tmp_path, "serve", cfg) / "forge.yaml")
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(serve_cfg))
    d = subprocess.run([str(BIN / "serve"), "deploy", str(tmp_path / "serve.yaml"), "--address",
                        three_nodes["dashboard"]], env=three_nodes["env"], capture_output=True, text=True, timeout=120)
    assert d.returncode == 0, d.stderr[-2000:]
    try:
        request_ids = _serve_drift_retrain_swap(stack, three_nodes, tmp_path, cfg, port)
    finally:  # replicas flush what they hold before the labels report reads the log (on a failure, _free_cluster)
        _serve_shutdown(three_nodes)
    _registry_and_labels_work_against_the_server(tmp_path / "serve" / "forge.yaml", request_ids)
    _state_is_on_s3_only(fs, tmp_path, started, three_nodes)


def _serve_shutdown(cluster: dict) -> None:
    subprocess.run([str(BIN / "serve"), "shutdown", "--address", cluster["dashboard"], "-y"], env=cluster["env"],
                   capture_output=True, timeout=120)  # replicas flush what they hold


def _serve_drift_retrain_swap(stack: dict, three_nodes: dict, tmp_path: Path, cfg: dict, port: int) -> list[str]:
    """Traffic to the deployed app, a drift job on its S3 log, a retraining job, the live swap: the request ids."""
    fs = stack["fs"]
    url = f"http://127.0.0.1:{port}"
    assert wait_ready(f"{url}/readyz", 240), "the deployed app never became ready"

    from forge.config import ForgeConfig
    from forge.serving.auth import Settings, create_token

    token = create_token(Settings.from_config(ForgeConfig.model_validate(cfg).serving.auth), "t", ["predict"])
    headers = {"Authorization": f"Bearer {token}"}
    rows = synthetic.generate(300, seed=12, shift=1.5)[FEATURES]
    ok, request_ids = 0, []
    for i in range(0, 300, 20):
        body = {"instances": json.loads(rows.iloc[i : i + 20].to_json(orient="records"))}
        r = httpx.post(f"{url}/v1/predict", json=body, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["model"]["version"] == "1"
        ok += len(r.json()["predictions"])
        request_ids.append(r.json()["request_id"])

    deadline = time.time() + 120  # the replicas flush their logs to S3 every 0.5 s
    while time.time() < deadline and _log_rows(fs) < ok:
        time.sleep(1)
    assert _log_rows(fs) == ok

    drift = _submit(three_nodes, _folder(tmp_path, "drift", cfg), "forge", "drift", "-c", "forge.yaml", "--last",
                    str(ok), "--json")
    assert drift["dataset_drift"] and "prediction log" in drift["current"] and "s3://forge-cluster/ws" in drift[
        "current"]

    retrain = _submit(three_nodes, _folder(tmp_path, "retrain", cfg), "python", "jobs/retrain.py", "-c",
                      "forge.yaml", "--reason", "cluster-test", "--json")
    assert retrain["triggered"] and retrain["promoted"] and retrain["model_version"] == "2"
    deadline = time.time() + 180  # replicas poll every second; loading the new version is the slow part
    version = None
    while time.time() < deadline and version != "2":
        r = httpx.post(f"{url}/v1/predict", json={"instances": json.loads(rows.iloc[:1].to_json(orient="records"))},
                       headers=headers, timeout=30)
        assert r.status_code == 200, r.text  # the swap drops no request
        version = r.json()["model"]["version"]
        time.sleep(0.5)
    assert version == "2", "the live app did not swap to the retrained version"
    return request_ids


def _state_is_on_s3_only(fs: pafs.S3FileSystem, tmp_path: Path, started: float, three_nodes: dict) -> None:
    files = {i.path for i in fs.get_file_info(pafs.FileSelector("forge-cluster/ws", recursive=True))}
    for key in ("datasets/churn/LATEST", "reports/validation-churn-", "quarantine/churn/", "features/churn/meta.json",
                "predictions/churn/part-", "reports/drift-churn-", "reports/evaluation-churn-"):
        assert any(p.startswith(f"forge-cluster/ws/{key}") for p in files), key
    assert any("/tune/" in p and p.endswith("mlp.pt") for p in files), "no TorchTrainer checkpoint on S3"
    artifacts = fs.get_file_info(pafs.FileSelector("forge-mlflow/artifacts", recursive=True))
    assert any(a.path.endswith("MLmodel") for a in artifacts), "no model artifact behind the MLflow server"
    # No job left a workspace or a SQLite file on local disk: not in its working folder, nor in Ray's.
    local = [p for base in (tmp_path, Path("/tmp/ray")) for p in base.rglob("*")
             if (p.name == ".forge" or p.suffix == ".db") and p.stat().st_mtime >= started]
    assert local == [], local
    nodes = {t["node_id"] for t in _tasks(three_nodes["dashboard"]) if t.get("node_id")}
    assert len(nodes) >= 2, f"all work ran on {len(nodes)} node"


def _registry_and_labels_work_against_the_server(cfg_path: Path, request_ids: list[str]) -> None:
    """`forge models`, lineage and labels, unchanged, against `mlflow server` and the S3 workspace."""
    from tests.conftest import run_cli

    def cli(*args: str) -> dict:
        r = run_cli(*args, "-c", str(cfg_path), "--json", env=AWS, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout.strip().splitlines()[-1])

    versions = {v["version"]: v for v in cli("models", "list")["versions"]}
    assert set(versions) == {"1", "2"} and "champion" in versions["2"]["aliases"]
    chain = cli("models", "show", "2")
    assert chain["data"]["version"] and chain["data"]["manifest"].startswith("s3://forge-cluster/ws/datasets/")
    labels = cfg_path.parent / "labels.csv"
    labels.write_text("request_id,row,label\n" + "".join(f"{rid},0,1\n" for rid in request_ids))
    added = cli("labels", "add", str(labels))
    assert added["labels"] == len(request_ids) and added["path"].startswith("s3://forge-cluster/ws/labels/")
    assert "live_value" in cli("labels", "report")


def _log_rows(fs: pafs.S3FileSystem) -> int:
    import pyarrow.parquet as pq

    infos = fs.get_file_info(pafs.FileSelector("forge-cluster/ws/predictions/churn", allow_not_found=True))
    return sum(pq.read_metadata(i.path, filesystem=fs).num_rows for i in infos if i.base_name.startswith("part-"))


# ---- node failure ---------------------------------------------------------------------------------------------
FAIL_WS = "s3://forge-cluster/ws-fail"


def _config(stack: dict, port: int, **over) -> dict:
    # A model of its own: the registry is shared with the first test, whose champion must not judge this one.
    cfg = {"name": "churn_fail", "workspace": FAIL_WS, "tracking_uri": stack["mlflow"],
           "object_store": {"endpoint_url": stack["endpoint"]},
           "data": {"source": "s3://forge-cluster/raw/churn-fail.csv", "target": "churned",
                    "timestamp": "event_time", "entity": "customer_id"},
           "training": {"num_samples": 3, "max_concurrent": 2, "max_epochs": 5, "scheduler": "none",
                        "models": {"mlp": {"hidden": 16, "layers": 1, "batch_size": 64}}},
           "serving": {"host": "127.0.0.1", "port": port, "model_poll_s": 1, "replica_cpus": 0.6,
                       "autoscaling": {"min_replicas": 2, "max_replicas": 2}},
           "monitoring": {"prediction_log": {"flush_interval_s": 0.5}}}
    cfg.update(over)
    return cfg


def _state(cluster: dict, kind: str) -> list[dict]:
    try:
        r = httpx.get(f"{cluster['dashboard']}/api/v0/{kind}", params={"detail": 1, "limit": 10000},
                      headers=_auth(), timeout=30)
        return r.json()["data"]["result"]["result"]
    except (httpx.HTTPError, KeyError, ValueError):
        return []


def _node_id(cluster: dict, i: int) -> str | None:
    return next((n["node_id"] for n in _state(cluster, "nodes") if n["state"] == "ALIVE"
                 and n.get("resources_total", {}).get(f"node{i}")), None)


def _kill_node(cluster: dict, i: int) -> None:
    """SIGKILL worker i's raylet: what a crashed node or an OOM-killed raylet looks like."""
    import signal

    import psutil

    raylets = [c for c in psutil.Process(cluster[f"node{i}"].pid).children(recursive=True) if c.name() == "raylet"]
    assert raylets, f"node{i} has no raylet"
    for r in raylets:
        r.send_signal(signal.SIGKILL)


def _revive(cluster: dict, i: int) -> None:
    _stop(cluster[f"node{i}"])
    _worker(cluster, i)


def _job_result(cluster: dict, job_id: str, timeout: float = 900) -> tuple[str, dict | None, str]:
    deadline = time.time() + timeout
    status = "?"
    while time.time() < deadline:
        status = httpx.get(f"{cluster['dashboard']}/api/jobs/{job_id}", headers=_auth(), timeout=30).json()["status"]
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(2)
    logs = httpx.get(f"{cluster['dashboard']}/api/jobs/{job_id}/logs", headers=_auth(), timeout=30).json()["logs"]
    found = [line for line in logs.splitlines() if line.startswith("{")]
    return status, json.loads(found[-1]) if found else None, logs


def test_a_search_finishes_when_a_worker_node_is_killed(stack, three_nodes, tmp_path):
    fs = stack["fs"]
    with fs.open_output_stream("forge-cluster/raw/churn-fail.csv") as f:
        f.write(synthetic.generate(1500, seed=13).to_csv(index=False).encode())
    wd = _folder(tmp_path, "search", _config(stack, free_port()))
    r = subprocess.run([str(BIN / "ray"), "job", "submit", "--no-wait", "--address", three_nodes["dashboard"],
                        "--working-dir", str(wd), "--", "python", "jobs/pipeline.py", "-c", "forge.yaml", "--json"],
                       env=three_nodes["env"], capture_output=True, text=True, timeout=120)
    job_id = next(w.strip("'") for w in r.stdout.split() if w.strip("'").startswith("raysubmit_"))
    victim, deadline = None, time.time() + 600
    while victim is None and time.time() < deadline:  # wait for a TorchTrainer worker on a worker node
        workers = {a["node_id"] for a in _state(three_nodes, "actors")
                   if a["state"] == "ALIVE" and "TrainWorker" in a.get("class_name", "")}
        victim = next((i for i in (1, 2) if _node_id(three_nodes, i) in workers), None)
        time.sleep(1)
    assert victim, "no training worker ever ran on a worker node"
    killed_at = time.time()
    _kill_node(three_nodes, victim)
    status, out, logs = _job_result(three_nodes, job_id)
    took = time.time() - killed_at
    assert status == "SUCCEEDED", logs[-4000:]
    assert out["trials"] == 3 and out["failed_trials"] == 0 and out["promoted"], out
    print(f"\nnode failure during the search: node{victim} killed, the job finished {took:.0f} s later with "
          f"{out['trials']}/3 trials completed")
    _revive(three_nodes, victim)


def test_serving_loses_no_prediction_when_a_worker_node_is_killed(stack, three_nodes, tmp_path):
    import concurrent.futures
    import uuid

    port = free_port()
    cfg = _config(stack, port)
    serve_cfg = yaml.safe_load((ROOT / "serve_apps" / "forge.yaml").read_text())
    # One machine, one IP: the nodes cannot each bind the HTTP port, so the proxy runs on the head only.
    serve_cfg.update(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    serve_cfg["applications"][0].pop("deployments")  # this test's forge.yaml sizes the deployment
    serve_cfg["applications"][0]["args"]["config"] = str(_folder(tmp_path, "serve", cfg) / "forge.yaml")
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(serve_cfg))
    env, dash = three_nodes["env"], three_nodes["dashboard"]
    d = subprocess.run([str(BIN / "serve"), "deploy", str(tmp_path / "serve.yaml"), "--address", dash], env=env,
                       capture_output=True, text=True, timeout=120)
    assert d.returncode == 0, d.stderr[-2000:]
    url = f"http://127.0.0.1:{port}"
    assert wait_ready(f"{url}/readyz", 240), "the app never became ready"

    def replica_nodes() -> set:
        return {a["node_id"] for a in _state(three_nodes, "actors")
                if a["state"] == "ALIVE" and a.get("class_name", "").startswith("ServeReplica")}

    deadline = time.time() + 120
    while time.time() < deadline and len(replica_nodes()) < 2:
        time.sleep(1)
    victim = next((i for i in (1, 2) if _node_id(three_nodes, i) in replica_nodes()), None)
    assert victim, "no replica on a worker node"

    from forge.config import ForgeConfig
    from forge.serving.auth import Settings, create_token

    token = create_token(Settings.from_config(ForgeConfig.model_validate(cfg).serving.auth), "t", ["predict"])
    body = {"instances": json.loads(synthetic.generate(1, seed=14)[FEATURES].to_json(orient="records"))}
    stop_at = time.time() + 30
    outcomes: list[tuple[str, int]] = []
    retried: list[str] = []

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            while time.time() < stop_at:
                rid = uuid.uuid4().hex
                code = 0
                for _ in range(2):  # one retry on 503 or a dropped connection, as the README recommends
                    try:
                        code = http.post(f"{url}/v1/predict", json=body, headers={
                            "Authorization": f"Bearer {token}", "x-request-id": rid}).status_code
                    except httpx.TransportError:
                        code = 0
                    if code not in (0, 502, 503, 504):
                        break
                    retried.append(rid)
                    time.sleep(0.2)
                outcomes.append((rid, code))
                time.sleep(0.02)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(client) for _ in range(3)]
        time.sleep(10)
        _kill_node(three_nodes, victim)
        for f in futures:
            f.result()
    ok = {rid for rid, code in outcomes if code == 200}
    failed = len(outcomes) - len(ok)
    rate = failed / len(outcomes)
    from collections import Counter

    codes = Counter(code for _, code in outcomes)
    print(f"\nnode failure while serving: {len(outcomes)} requests, {failed} failed after one retry ({rate:.2%}); "
          f"status codes {dict(codes)}; {len(set(retried))} needed the retry")

    # The killed node comes back with its disk; the sweep turns its dead replica's segments into Parquet.
    _revive(three_nodes, victim)
    r = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", dash, "--entrypoint-resources",
                        json.dumps({f"node{victim}": 1}), "--working-dir", str(_folder(tmp_path, "recover", cfg)),
                        "--", "forge", "log", "recover", "-c", "forge.yaml", "--json"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    recovered = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])["recovered"]
    print(f"the dead replica's write-ahead segments gave back {recovered} records")
    subprocess.run([str(BIN / "serve"), "shutdown", "--address", dash, "-y"], env=env, capture_output=True,
                   timeout=120)  # replicas flush what they hold
    from forge.monitoring.prediction_log import read_log
    from forge.workspace import Workspace

    fcfg = ForgeConfig.model_validate(cfg)
    log = read_log(Workspace.from_config(fcfg).predictions(fcfg.name))
    # The caller's x-request-id rides along as client_request_id (the join key is the server's own id).
    logged = log["client_request_id"].dropna().tolist()
    assert ok <= set(logged), f"{len(ok - set(logged))} answered predictions are missing from the log"
    assert not log.duplicated(["request_id", "row"]).any(), "a prediction was logged twice"
    # A retried request can be served twice: the dying replica logged it (its write-ahead segment was recovered
    # above) but its answer never reached the client, who sent it again. Seen once in a full run: 2 retried, 1
    # logged by both replicas, each under its own server request_id. Only a retried client id may appear twice.
    twice = {c for c, n in Counter(logged).items() if n > 1}
    assert twice <= set(retried), f"{len(twice - set(retried))} requests sent once were logged twice"
    assert rate <= 0.01, f"{rate:.2%} of requests failed while a node died"
