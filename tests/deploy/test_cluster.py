"""A real two-node Ray cluster on loopback: the pipeline via `ray job submit`, trials and Ray Data tasks on
both nodes, `serve deploy` of serve_apps/forge.yaml, batch inference as a job, clean shutdown."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from forge.data import synthetic
from tests.conftest import ROOT, free_port, wait_ready, write_project
from tests.contract import cli_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BIN = Path(sys.executable).parent


def _ports() -> list[str]:
    """Per-node ports: another Ray on this machine (the session's own) already holds the defaults."""
    return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}"]


def _start(args: list[str], env: dict) -> subprocess.Popen:
    # --block keeps each node's processes under one process group we can stop without `ray stop`,
    # which would also kill the test session's own cluster.
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *_ports(), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    except ProcessLookupError:
        pass  # already gone (a test killed the node)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _auth() -> dict:
    token = Path.home() / ".ray" / "auth_token"
    return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}


def _tasks(dashboard: str) -> list[dict]:
    r = httpx.get(f"{dashboard}/api/v0/tasks", params={"limit": 10000, "detail": 1}, headers=_auth(), timeout=60)
    return r.json()["data"]["result"]["result"]


def _job(dashboard: str, env: dict, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "ray"), "job", "submit", "--address", dashboard, "--working-dir", str(ROOT), "--", *args]
    for _ in range(12):  # the job agent comes up a little after the dashboard answers
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if "No available agent" not in r.stderr + r.stdout:
            return r
        time.sleep(5)
    return r


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    gcs, dash, client = free_port(), free_port(), free_port()
    # Ray 2.60 turns token auth on for clusters started here: `ray start --head` writes ~/.ray/auth_token,
    # and clients (job submit, serve deploy, a joining node) use it with RAY_AUTH_MODE=token.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "token"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the job's `python` is this environment's
    head = _start(["--head", f"--port={gcs}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
                   f"--ray-client-server-port={client}", "--num-cpus=1", "--resources={\"head_node\": 1}"], env)
    procs = [head]
    dashboard = f"http://127.0.0.1:{dash}"
    try:  # a failed start must not leak nodes into the rest of the session
        assert wait_ready(f"{dashboard}/api/version", 180, headers=_auth()), "head node did not start"
        procs.append(_start([f"--address=127.0.0.1:{gcs}", "--num-cpus=1", "--resources={\"node2\": 1}"], env))
        deadline = time.time() + 180
        nodes = []
        while time.time() < deadline:
            try:
                nodes = [n for n in httpx.get(f"{dashboard}/nodes?view=summary", headers=_auth(),
                                              timeout=5).json()["data"]["summary"] if n["raylet"]["state"] == "ALIVE"]
            except Exception:
                nodes = []
            if len(nodes) == 2:
                break
            time.sleep(1)
        assert len(nodes) == 2, "second node did not join"
        yield {"dashboard": dashboard, "gcs": f"127.0.0.1:{gcs}", "env": env}
    finally:
        for proc in reversed(procs):
            _stop(proc)
        _restore_current_cluster()


def _restore_current_cluster() -> None:
    """`ray start` made this cluster the machine's current one; make it the session's again.

    Ray Train's placement-group cleaner finds its cluster through that file: left pointing at a stopped
    cluster, a later test's TorchTrainer trial stopped by ASHA would keep its CPU reserved for ever.
    """
    import ray

    from forge._runtime import publish_address

    if ray.is_initialized():
        publish_address(ray.get_runtime_context().gcs_address)


def test_pipeline_job_serve_deploy_and_batch_job_on_two_nodes(cluster, tmp_path):
    env = cluster["env"]
    # data.in_process_bytes 0: this file is small enough to validate in the driver, and the test is about the
    # Ray Data path a large source takes across nodes
    cfg_path = write_project(tmp_path / "proj", rows=1200, seed=8, data__in_process_bytes=0,
                             training={"num_samples": 4, "max_concurrent": 2, "models": ["logistic_regression",
                                                                                          "random_forest"]})
    r = _job(cluster["dashboard"], env, "python", "jobs/pipeline.py", "-c", str(cfg_path), "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = cli_json(r, "run")
    assert out["promoted"] and out["trials"] == 4

    tasks = _tasks(cluster["dashboard"])
    data_nodes = {t["node_id"] for t in tasks if t.get("node_id") and ("ReadCSV" in t["name"] or "MapBatches" in
                                                                        t["name"])}
    trial_nodes = {t["node_id"] for t in tasks if t.get("node_id") and "_trial" in t["name"]}
    assert len(data_nodes) == 2, f"Ray Data tasks ran on {len(data_nodes)} node(s)"
    assert len(trial_nodes) == 2, f"Tune trials ran on {len(trial_nodes)} node(s)"

    port = free_port()
    serve_cfg = yaml.safe_load((ROOT / "serve_apps" / "forge.yaml").read_text())
    serve_cfg["http_options"] = {"host": "127.0.0.1", "port": port}
    serve_cfg["applications"][0].pop("deployments")  # this test's forge.yaml sizes the deployment
    serve_cfg["applications"][0]["args"]["config"] = str(cfg_path)
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(serve_cfg))
    d = subprocess.run([str(BIN / "serve"), "deploy", str(tmp_path / "serve.yaml"), "--address",
                        cluster["dashboard"]], env=env, capture_output=True, text=True, timeout=120)
    assert d.returncode == 0, d.stderr[-2000:]
    url = f"http://127.0.0.1:{port}"
    assert wait_ready(f"{url}/readyz", 180), "the deployed app never became ready"
    from forge.config import load_config
    from forge.serving.auth import Settings, create_token

    token = create_token(Settings.from_config(load_config(cfg_path).serving.auth), "t", ["predict"])
    rows = synthetic.generate(3, seed=1)[["usage_hours", "monthly_spend", "tenure_months", "support_tickets", "age",
                                          "region", "plan", "discount"]]
    resp = httpx.post(f"{url}/v1/predict", json={"instances": json.loads(rows.to_json(orient="records"))},
                      headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["predictions"]) == 3

    # free the Serve replica's CPU for the batch job
    subprocess.run([str(BIN / "serve"), "shutdown", "--address", cluster["dashboard"], "-y"], env=env,
                   capture_output=True, timeout=120)
    (tmp_path / "batch_in").mkdir()
    for i in range(3):
        synthetic.generate(700, seed=20 + i).to_parquet(tmp_path / "batch_in" / f"part-{i}.parquet")
    r = _job(cluster["dashboard"], env, "python", "jobs/batch_predict.py", "-c", str(cfg_path), "--input",
             str(tmp_path / "batch_in"), "--output", str(tmp_path / "batch_out"), "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = cli_json(r, "predict")
    assert res["rows"] == res["rows_in"] == 2100
    assert len(pd.read_parquet(tmp_path / "batch_out")) == 2100
