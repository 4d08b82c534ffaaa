"""The rendered manifests' Ray pods, run here as a node would run them (tests/deploy/sandbox.py: bubblewrap, a
read-only root filesystem, the emptyDirs as tmpfs, the image's UID and GID, the Secrets with their modes and the
pod's fsGroup, the container's env): the training RayCluster's head and a worker start Ray, the pipeline runs on
them as a Ray job and signs its champion with the key from its Secret file; the RayService's head then serves
that champion from the generated serveConfigV2 and answers an RS256 token with the public key from its file.

What stands in for the cluster's outside: a folder for the object store and a SQLite MLflow in it (bound
writable, as S3 and the MLflow server are outside the pod). Only the ports are moved, to free ones here.
"""

import json
import os
import secrets as pysecrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from forge.serving.ports import pick_port
from tests.conftest import require_binary, write_project
from tests.deploy import sandbox
from tests.deploy.test_manifests import render

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    docs = render("overlays/prod")
    return {"RayCluster": next(d for d in docs if d["kind"] == "RayCluster"),
            "RayService": next(d for d in docs if d["kind"] == "RayService"),
            "forge-config": next(d for d in docs if d["kind"] == "ConfigMap"
                                 and d["metadata"]["name"] == "forge-config")["data"]}


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    pem, public = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    signing, jwt_key = ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(65537, 2048)
    private = serialization.PrivateFormat.PKCS8
    return {"signing": signing.private_bytes(pem, private, serialization.NoEncryption()).decode(),
            "verify": signing.public_key().public_bytes(pem, public).decode(),
            "jwt": jwt_key.private_bytes(pem, private, serialization.NoEncryption()).decode(),
            "jwt_public": jwt_key.public_key().public_bytes(pem, public).decode(),
            "ray": pysecrets.token_hex(32)}


def _secrets(keys: dict) -> dict[str, dict]:
    """The Secrets by name, as scripts/create-secrets.sh makes them (values for this machine)."""
    return {"forge-secrets": {"AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused"},
            "forge-serve-s3": {"AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused"},
            "forge-mlflow-client": {}, "forge-mlflow-reader": {},  # SQLite here: no MLflow users
            "forge-model-signing": {"model-signing.key": keys["signing"], "model-signing.pub": keys["verify"]},
            "forge-model-verify": {"model-signing.pub": keys["verify"]},
            "forge-jwt-public": {"public.pem": keys["jwt_public"]}}


def _require_sandbox() -> None:
    require_binary("bwrap")
    if os.geteuid() != 0:  # file owners other than oneself need root; CI runs as root
        if os.environ.get("CI") == "true":
            pytest.fail("the pod sandbox needs root (CI runs as root)")
        pytest.skip("the pod sandbox needs root: run make test as root, as CI does")


class Pod:
    """One sandboxed Ray container, its log in `log`."""

    def __init__(self, name: str, group: dict, env: dict, secrets: dict, where: Path, writable: list[Path],
                 head_address: str | None, ports: dict):
        pod, container = group["template"]["spec"], group["template"]["spec"]["containers"][0]
        self.log = where / f"{name}.log"
        argv = sandbox.bwrap_argv(pod, container, secrets, env, where / name, writable)
        self.process = subprocess.Popen(argv + sandbox.ray_start(group, head_address, ports),
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _ports(**fixed: int) -> dict[str, int]:
    names = ("metrics-export-port", "ray-client-server-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port", "node-manager-port", "object-manager-port")
    low = pick_port()
    return {**{n: pick_port() for n in names}, "min-worker-port": low, "max-worker-port": low + 60, **fixed}


def _wait(check, what: str, pods: list[Pod], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        dead = [p for p in pods if p.process.poll() is not None]
        assert not dead, f"{dead[0].log.name} exited: {dead[0].log.read_text()[-3000:]}"
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"{what} not within {timeout:.0f} s: {pods[0].log.read_text()[-3000:]}")


def _env(container: dict, config: dict, secrets: dict, token: str, project: Path) -> dict:
    env = sandbox.env_of(container, {"forge-config": config}, secrets, token)
    # The workspace and MLflow are the project's own (a folder, SQLite) instead of s3:// and the MLflow service.
    for key in ("FORGE_WORKSPACE", "FORGE_TRACKING_URI", "FORGE_OBJECT_STORE__ENDPOINT_URL"):
        env.pop(key, None)
    return env


def _client_env(token: str) -> dict:
    return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
            "PATH": f"{sandbox.REPO}/.venv/bin:{os.environ['PATH']}"}


def test_rendered_ray_pods_train_sign_and_serve_read_only(manifests, keys, tmp_path):
    _require_sandbox()
    project_dir = tmp_path / "project"
    config = write_project(project_dir, rows=300, training={"num_samples": 1, "max_concurrent": 1,
                                                            "models": ["logistic_regression"]})
    secrets = _secrets(keys)
    cluster = manifests["RayCluster"]["spec"]
    head_group, worker_group = cluster["headGroupSpec"], cluster["workerGroupSpecs"][0]
    gcs, dashboard = pick_port(), pick_port()
    head_env = _env(head_group["template"]["spec"]["containers"][0], manifests["forge-config"], secrets,
                    keys["ray"], project_dir)
    assert head_env["FORGE_SIGNING_KEY_FILE"].startswith("/var/run/secrets/")  # the manifest's, read as a file
    head = Pod("training-head", head_group, head_env, secrets, tmp_path, [project_dir], None,
               _ports(port=gcs, **{"dashboard-port": dashboard}))
    # KubeRay gives a worker --num-cpus from its CPU limit; this machine has two
    worker_group = {**worker_group, "rayStartParams": {**worker_group.get("rayStartParams", {}), "num-cpus": "2"}}
    worker_env = _env(worker_group["template"]["spec"]["containers"][0], manifests["forge-config"], secrets,
                      keys["ray"], project_dir)
    pods = [head]
    try:
        url = f"http://127.0.0.1:{dashboard}"
        _wait(lambda: httpx.get(f"{url}/api/version", headers={"Authorization": f"Bearer {keys['ray']}"},
                                timeout=2).status_code == 200, "the head's dashboard", pods)
        pods.append(Pod("training-worker", worker_group, worker_env, secrets, tmp_path, [project_dir],
                        f"127.0.0.1:{gcs}", _ports()))
        r = subprocess.run(["ray", "job", "submit", "--address", url, "--", "python", "jobs/pipeline.py", "-c",
                            str(config), "--json"], env=_client_env(keys["ray"]), capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:] + head.log.read_text()[-2000:]
        result = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
        assert result["promoted"] is True, result
        no_token = subprocess.run(["ray", "job", "list", "--address", url], capture_output=True, text=True,
                                  env={**_client_env(""), "RAY_AUTH_TOKEN": "wrong" * 8}, timeout=60)
        assert no_token.returncode != 0, "the cluster took a wrong token"
    finally:
        for pod in pods:
            pod.stop()
    _serve_from_the_rayservice_head(manifests, keys, secrets, config, project_dir, tmp_path)


def _serve_from_the_rayservice_head(manifests, keys, secrets, config, project_dir, tmp_path) -> None:
    import jwt

    service = manifests["RayService"]["spec"]
    head_group = service["rayClusterConfig"]["headGroupSpec"]
    env = _env(head_group["template"]["spec"]["containers"][0], manifests["forge-config"], secrets, keys["ray"],
               project_dir)
    # The prod config's auth (RS256, the public key from the mounted Secret), on the project's data and registry.
    prod = yaml.safe_load((sandbox.REPO / "kuberay" / "forge.prod.yaml").read_text())["serving"]["auth"]
    env.update(FORGE_SERVING__AUTH__ALGORITHM=prod["algorithm"],
               FORGE_SERVING__AUTH__PUBLIC_KEY_PATH=prod["public_key_path"])
    serve_config = yaml.safe_load(service["serveConfigV2"])
    port = pick_port()
    serve_config["http_options"]["port"] = port
    serve_config["applications"][0]["args"]["config"] = str(config)
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(serve_config))
    gcs, dashboard = pick_port(), pick_port()
    head = Pod("serve-head", head_group, env, secrets, tmp_path, [project_dir], None,
               _ports(port=gcs, **{"dashboard-port": dashboard}))
    try:
        url = f"http://127.0.0.1:{dashboard}"
        auth = {"Authorization": f"Bearer {keys['ray']}"}
        _wait(lambda: httpx.get(f"{url}/api/version", headers=auth, timeout=2).status_code == 200,
              "the Serve head's dashboard", [head])
        r = subprocess.run(["serve", "deploy", str(tmp_path / "serve.yaml"), "-a", url], env=_client_env(keys["ray"]),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
              "the champion served", [head], timeout=180)
        now = int(time.time())
        token = jwt.encode({"sub": "sandbox", "iat": now, "exp": now + 300, "scope": "predict"}, keys["jwt"],
                           "RS256")
        row = {"usage_hours": 20.5, "monthly_spend": 60.0, "tenure_months": 12, "support_tickets": 1, "age": 40,
               "region": "north", "plan": "basic", "discount": 0.1}
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"instances": [row]},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1, answer.text
        forged = jwt.encode({"sub": "x", "iat": now, "exp": now + 300, "scope": "predict"}, "a" * 64, "HS256")
        assert httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"instances": [row]},
                          headers={"Authorization": f"Bearer {forged}"}, timeout=30).status_code == 401
    finally:
        subprocess.run(["serve", "shutdown", "-a", f"http://127.0.0.1:{dashboard}", "-y"], capture_output=True,
                       env=_client_env(keys["ray"]), timeout=60)
        head.stop()
        if shutil.which("pkill"):  # Serve's HAProxy can outlive the cluster (the brief, Ray 2.60)
            subprocess.run(["pkill", "-f", f"haproxy.*{tmp_path}"], capture_output=True)


def test_a_secret_without_fsgroup_is_unreadable_in_the_sandbox(manifests, tmp_path):
    """The other half of the claim: the same manifest with no fsGroup leaves the 0440 key file root's alone, and
    the container's UID cannot read it (what kuberay/ said on paper before, and the retraining CronJob met)."""
    _require_sandbox()
    group = manifests["RayCluster"]["spec"]["headGroupSpec"]
    pod, container = group["template"]["spec"], group["template"]["spec"]["containers"][0]
    secrets = {"forge-model-signing": {"model-signing.key": "k", "model-signing.pub": "p"}}
    read = ["cat", "/var/run/secrets/forge/model-signing/model-signing.key"]
    with_group = sandbox.bwrap_argv(pod, container, secrets, {}, tmp_path / "with", [])
    assert subprocess.run(with_group + read, capture_output=True, text=True).stdout == "k"
    without = {**pod, "securityContext": {k: v for k, v in pod["securityContext"].items() if k != "fsGroup"}}
    r = subprocess.run(sandbox.bwrap_argv(without, container, secrets, {}, tmp_path / "without", []) + read,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stdout + r.stderr
    write = subprocess.run(with_group + ["touch", "/home/ray/x"], capture_output=True, text=True)
    assert "Read-only file system" in write.stderr, write.stderr
