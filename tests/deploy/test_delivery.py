"""Delivery: the image the deploy workflow built, pinned by digest for any repository name; state on the object
store; the secrets every manifest names, made by scripts/create-secrets.sh (run here against a fake kubectl);
the smoke test's token accepted by Forge; batch jobs queued by Kueue as its admission webhooks require."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT, require_binary
from tests.deploy.test_hardening import pod_specs
from tests.deploy.test_manifests import built, render  # noqa: F401  (built: the rendered overlays, a fixture)


def test_images_are_the_commit_the_deploy_workflow_built(built):  # noqa: F811
    name, docs = built
    images = {c["image"] for d in docs for _, pod in pod_specs(d) for c in pod["containers"]}
    if name.startswith("overlays/"):  # by digest: a tag can be moved under a running deployment, a digest cannot
        assert images == {"ghcr.io/mlops-forge/forge@sha256:" + "0" * 64}, images
    else:
        assert images == {"ghcr.io/mlops-forge/forge:COMMIT_SHA"}, images  # no :latest or :dev that nothing pushes
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    trigger = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert trigger["workflow_run"]["workflows"] == ["ci"], "deploy only what CI passed"
    assert "conclusion == 'success'" in wf["jobs"]["image"]["if"]
    run = "\n".join(s.get("run", "") for s in wf["jobs"]["deploy"]["steps"])
    assert 'pin_image.py "ghcr.io/${GITHUB_REPOSITORY}" "$DIGEST"' in run and "kubectl apply -k" in run
    assert "kuberay/overlays/prod/jobs" in run, "the one-shot jobs are pinned to the same image"
    build = next(s for s in wf["jobs"]["image"]["steps"] if s.get("id") == "build")["with"]
    assert build["build-args"] == "RAY_IMAGE=${{ steps.base.outputs.image }}", "the base image by its digest"
    assert wf["jobs"]["image"]["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
    assert "kubectl -n \"$NS\" wait rayservice/forge-serve" in run, "the rollout is waited for"
    assert "/readyz" in run and "Authorization: Bearer" in run and "/v1/predict" in run, "and smoke-tested"


def test_state_lives_on_the_object_store_and_mlflow_can_start(built):  # noqa: F811
    _, docs = built
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "forge-config")
    assert config["data"]["FORGE_WORKSPACE"].startswith("s3://")
    ray_pods = [(w, p) for d in docs for w, p in pod_specs(d) if w.startswith(("RayCluster", "RayJob h", "RayJob w",
                                                                                 "RayService"))]
    for where, pod in ray_pods:
        refs = [e.get("configMapRef", {}).get("name") for c in pod["containers"] for e in c.get("envFrom", [])]
        assert "forge-config" in refs, f"{where}: no workspace on the object store"
    job = next(d for d in docs if d["kind"] == "RayJob")
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]["FORGE_DATA__SOURCE"].startswith("s3://")
    mlflow = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "forge-mlflow")
    pod = mlflow["spec"]["template"]["spec"]
    assert "--allowed-hosts" in pod["containers"][0]["command"]
    assert pod["initContainers"][0]["command"][:3] == ["mlflow", "db", "upgrade"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "psycopg" in dockerfile
    assert "sed -i '/NOPASSWD/d' /etc/sudoers" in dockerfile and dockerfile.rstrip().split("\nUSER ")[-1].startswith(
        "ray"), "no passwordless sudo, and the image ends as ray"
    # MLflow's auth app, its users and admin from forge-mlflow-auth; Forge's Ray pods call it as forge-mlflow-client
    server = pod["containers"][0]
    assert server["command"][2:5] == ["--app-name", "basic-auth", "--host"], server["command"]
    env = {e["name"]: e for e in server["env"]}
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"].startswith("/etc/mlflow-auth/")
    for key in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "forge-mlflow-auth", key
    for where, ray_pod in ray_pods:  # Serve reads models as its READ user; training writes as forge-mlflow-client
        refs = [e.get("secretRef", {}).get("name") for c in ray_pod["containers"] for e in c.get("envFrom", [])]
        user = "forge-mlflow-reader" if where.startswith("RayService") else "forge-mlflow-client"
        assert user in refs, f"{where}: no MLflow credentials"


def test_serving_edge_upgrades_and_monitor_selection(built):  # noqa: F811
    _, docs = built
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    cluster = next(d for d in by_kind["RayCluster"])
    assert cluster["spec"]["upgradeStrategy"]["type"] == "Recreate"
    service = by_kind["RayService"][0]
    assert service["spec"]["upgradeStrategy"]["type"] == "NewCluster"
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["deployments"][0]
    assert serve["autoscaling_config"]["max_replicas"] >= serve["autoscaling_config"]["min_replicas"] >= 1
    (ingress,) = by_kind["Ingress"]
    assert ingress["spec"]["tls"] and {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"]
                                       for p in r["http"]["paths"]} == {"forge-serve-serve-svc"}
    (pdb,) = by_kind["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == {"forge.io/cluster": "serve"}
    for d in by_kind["PodMonitor"] + by_kind["PrometheusRule"]:
        assert d["metadata"]["labels"]["release"] == "kube-prometheus-stack", d["metadata"]["name"]


def test_pin_image_renders_another_repositorys_image_at_its_digest(tmp_path):
    """A fork is ghcr.io/<its owner>/<its name>: the workflow pins that, and every pod of the overlay and its
    jobs then runs it, by digest."""
    shutil.copytree(ROOT / "kuberay", tmp_path / "kuberay", ignore=shutil.ignore_patterns("crds"))
    digest = "sha256:" + "ab" * 32
    prod = tmp_path / "kuberay" / "overlays" / "prod"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "pin_image.py"), "ghcr.io/Acme/forge-fork", digest,
                        str(prod), str(prod / "jobs")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    docs = []
    for folder in (prod, prod / "jobs"):
        out = subprocess.run([require_binary("kubectl"), "kustomize", str(folder)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        docs += [d for d in yaml.safe_load_all(out.stdout) if d]
    images = {c["image"] for d in docs for _, pod in pod_specs(d) for c in pod["containers"]}
    assert images == {f"ghcr.io/acme/forge-fork@{digest}"}, images  # registries want lower case
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "pin_image.py"), "ghcr.io/acme/x", "latest",
                          str(prod)], capture_output=True, text=True)
    assert bad.returncode != 0 and "not an image digest" in bad.stderr


def test_the_smoke_tests_token_is_one_forge_accepts(tmp_path):
    """The workflow's token, made from its own command line with an RS256 key, verified by the prod config's
    settings with the public half, as the Serve pods would."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from forge.config import load_config
    from forge.serving.auth import settings_for, verify

    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    smoke = next(s for s in wf["jobs"]["deploy"]["steps"] if s.get("name") == "Smoke test")["run"]
    code = re.search(r"token=\$\([^ ]+ -c '([^']+)'\)", smoke).group(1)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    (tmp_path / "public.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    token = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "FORGE_JWT_PRIVATE_KEY": private}).stdout.strip()
    cfg = load_config(ROOT / "kuberay" / "forge.prod.yaml", environ={})
    cfg.serving.auth.public_key_path = str(tmp_path / "public.pem")
    claims = verify(settings_for(cfg), f"Bearer {token}")
    assert "predict" in claims["scope"].split()
    assert re.search(r"waiting_for_model\) exit 0", smoke), "a first deploy, before any champion, is no failure"


def test_batch_jobs_queue_in_kueue_as_its_webhooks_require(built):  # noqa: F811
    """Kueue's RayJob webhook refuses a queued job whose cluster autoscales in-tree (unless elastic workload
    slices are on) and one without shutdownAfterJobFinishes (kueue pkg/controller/jobs/rayjob/rayjob_webhook.go);
    its RayCluster webhook the same for a queued RayCluster (raycluster_webhook.go). Each overlay's jobs go to a
    ClusterQueue of its own, admitting its own namespace only; Serve is never queued."""
    name, docs = built
    queues = {d["metadata"]["name"]: d for d in docs if d["kind"] == "LocalQueue"}
    cluster_queues = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterQueue"}
    jobs = [d for d in docs if d["kind"] == "RayJob"]
    assert {j["metadata"]["name"] for j in jobs} == {"forge-pipeline", "forge-batch-predict"}
    for job in jobs:
        queue = job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
        assert queue in queues, f"{job['metadata']['name']}: no LocalQueue {queue} beside it"
        assert queues[queue]["spec"]["clusterQueue"] in cluster_queues
        assert job["spec"]["shutdownAfterJobFinishes"] is True
        assert not job["spec"]["rayClusterSpec"].get("enableInTreeAutoscaling")
        for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]:  # a fixed size: what Kueue admits
            assert group["replicas"] == group["minReplicas"] == group["maxReplicas"], group["groupName"]
    for d in docs:
        if d["kind"] in ("RayService", "RayCluster"):
            assert "kueue.x-k8s.io/queue-name" not in d["metadata"].get("labels", {}), d["kind"]
    (queue,) = cluster_queues.values()
    if name.startswith("overlays/"):
        namespace = next(d for d in docs if d["kind"] == "Namespace")["metadata"]["name"]
        assert queue["metadata"]["name"] == f"forge-batch-{name.split('/')[1]}"  # dev and prod never share quota
        assert queue["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    else:
        assert queue["spec"]["namespaceSelector"]["matchLabels"], "an empty selector admits every namespace"


def _referenced_secrets(docs: list[dict]) -> set[str]:
    text = yaml.safe_dump_all(docs)
    referenced = set(re.findall(r"secretName: ([a-z0-9-]+)", text)) | set(re.findall(
        r"secretKeyRef:\s*\n\s*key: [^\n]+\n\s*name: ([a-z0-9-]+)", text)) | set(re.findall(
            r"secretRef:\s*\n\s*name: ([a-z0-9-]+)", text)) | set(
                re.findall(r"urlSecret:\s*\n\s*key: [^\n]+\n\s*name: ([a-z0-9-]+)", text))
    referenced |= {s["name"] for d in docs for s in d.get("imagePullSecrets", [])}
    referenced |= {s["name"] for d in docs for _, pod in pod_specs(d) for s in pod.get("imagePullSecrets", [])}
    for d in docs:  # KubeRay reads the Ray token from the secret authOptions names
        cluster = {"RayService": d.get("spec", {}).get("rayClusterConfig")}.get(d["kind"], d.get("spec", {}))
        if isinstance(cluster, dict) and cluster.get("authOptions", {}).get("secretName"):
            referenced.add(cluster["authOptions"]["secretName"])
    referenced.discard("forge-tls")  # issued by cert-manager (serve-edge.yaml's annotation)
    return referenced


FAKE_KUBECTL = """#!/usr/bin/env bash
# `create ... --dry-run=client` as kubectl does it (no server needed); `get` finds nothing; `apply` is recorded.
case "$*" in
  *" create "*|create*) exec "$REAL_KUBECTL" "$@" ;;
  *" get "*|get*) exit 1 ;;
  *apply*) { echo "--- $*"; cat; } >> "$RECORD" ;;
esac
"""


def _run_create_secrets(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", str(tmp_path / "jwt.key")], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "jwt.key"), "-pubout", "-out",
                    str(tmp_path / "jwt.pub")], check=True, capture_output=True)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "REAL_KUBECTL": require_binary("kubectl"),
           "RECORD": str(tmp_path / "applied.yaml"), "NAMESPACE": "forge-prod", "RAY_AUTH_TOKEN": "r" * 40,
           "FORGE_JWT_PUBLIC_KEY_FILE": str(tmp_path / "jwt.pub"), "MLFLOW_BACKEND_STORE_URI": "postgresql://m",
           "MLFLOW_ARTIFACTS_DESTINATION": "s3://b/mlflow", "MLFLOW_S3_ENDPOINT_URL": "https://s3.amazonaws.com",
           "AWS_ACCESS_KEY_ID": "train-key", "AWS_SECRET_ACCESS_KEY": "train-secret",
           "SERVE_AWS_ACCESS_KEY_ID": "serve-key", "SERVE_AWS_SECRET_ACCESS_KEY": "serve-secret",
           "MLFLOW_AUTH_DATABASE_URI": "postgresql://a", "MLFLOW_PASSWORD": "p" * 40,
           "MLFLOW_READER_PASSWORD": "q" * 40, "ALERT_WEBHOOK_ONCALL": "https://h/1",
           "ALERT_WEBHOOK_TEAM": "https://h/2", "REGISTRY_USER": "bot", "REGISTRY_TOKEN": "t" * 20, **overrides}
    return subprocess.run(["bash", str(ROOT / "scripts" / "create-secrets.sh")], env=env, capture_output=True,
                          text=True, timeout=60)


def test_create_secrets_makes_every_secret_the_manifests_name_split_by_role(built, tmp_path):  # noqa: F811
    name, docs = built
    r = _run_create_secrets(tmp_path)
    assert r.returncode == 0, r.stderr
    applied = {}
    for chunk in (tmp_path / "applied.yaml").read_text().split("--- ")[1:]:
        args, _, body = chunk.partition("\n")
        assert "--server-side" in args, args  # no last-applied annotation holding the values
        doc = yaml.safe_load(body)
        applied[doc["metadata"]["name"]] = doc
    referenced = _referenced_secrets(docs)
    assert {"forge-jwt-public", "forge-ray-token", "forge-mlflow-auth", "forge-mlflow-client", "forge-mlflow-reader",
            "forge-serve-s3", "forge-model-signing", "forge-model-verify", "forge-registry"} <= referenced, referenced
    assert "forge-jwt" not in referenced, "no HS256 signing secret on the cluster"
    assert referenced <= set(applied), referenced - set(applied)
    example = {d["metadata"]["name"] for d in yaml.safe_load_all((ROOT / "kuberay" / "base" /
                                                                  "secrets.example.yaml").read_text())}
    assert referenced <= example, referenced - example
    import base64

    def value(secret: str, key: str) -> str:
        return base64.b64decode(applied[secret]["data"][key]).decode()
    # the roles' credentials differ, and Serve's public halves match the training side's private keys
    assert value("forge-serve-s3", "AWS_ACCESS_KEY_ID") == "serve-key"
    assert value("forge-secrets", "AWS_ACCESS_KEY_ID") == "train-key"
    assert value("forge-model-verify", "model-signing.pub") == value("forge-model-signing", "model-signing.pub")
    assert "PRIVATE" not in value("forge-model-verify", "model-signing.pub")
    assert "PRIVATE" not in value("forge-jwt-public", "public.pem")


def test_create_secrets_refuses_a_private_jwt_key_and_a_short_token(tmp_path):
    r = _run_create_secrets(tmp_path, RAY_AUTH_TOKEN="short")
    assert r.returncode == 2 and "RAY_AUTH_TOKEN must be at least 32" in r.stderr
    (tmp_path / "private.pem").write_text((tmp_path / "jwt.key").read_text())
    r = _run_create_secrets(tmp_path, FORGE_JWT_PUBLIC_KEY_FILE=str(tmp_path / "private.pem"))
    assert r.returncode == 2 and "is a private key" in r.stderr
    assert not (tmp_path / "applied.yaml").exists(), "nothing applied before the checks"
