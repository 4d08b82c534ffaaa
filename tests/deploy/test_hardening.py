"""Every pod template in every rendered overlay, the KubeRay ones included: locked down as kuberay/ says.

securityContext (non-root, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault, read-only
root filesystem), resource limits, ServiceAccount tokens only on Ray heads, the JWT secret only on Serve pods and
as a file, Ray token auth on every cluster and with every submitter, PSA `restricted` on the namespaces.
What only a real cluster proves (that Ray runs with these settings) is in the note, not here.
"""

import copy
import re

import pytest
import yaml

from tests.conftest import ROOT
from tests.deploy.test_manifests import built  # noqa: F401  (the rendered overlays, a fixture)


def _ray_pods(kind: str, cluster: dict) -> list[tuple[str, dict]]:
    out = [(f"{kind} head", cluster["headGroupSpec"]["template"]["spec"])]
    out += [(f"{kind} worker {g['groupName']}", g["template"]["spec"]) for g in cluster.get("workerGroupSpecs", [])]
    return out


def pod_specs(doc: dict) -> list[tuple[str, dict]]:
    """(where, pod spec) of every pod a rendered object makes."""
    kind, spec = doc["kind"], doc.get("spec", {})
    if kind == "Deployment":
        return [(f"Deployment {doc['metadata']['name']}", spec["template"]["spec"])]
    if kind == "CronJob":
        return [(f"CronJob {doc['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind == "RayCluster":
        return _ray_pods("RayCluster", spec)
    if kind == "RayJob":
        return _ray_pods("RayJob", spec["rayClusterSpec"]) + [("RayJob submitter", spec["submitterPodTemplate"]["spec"])]
    if kind == "RayService":
        return _ray_pods("RayService", spec["rayClusterConfig"])
    return []


def _problems(where: str, pod: dict) -> list[str]:
    bad = []
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        bad.append(f"{where}: pod securityContext needs runAsNonRoot and seccomp RuntimeDefault")
    token = pod.get("automountServiceAccountToken")
    if where.endswith(" head") and where.startswith(("RayCluster", "RayService", "RayJob")):
        if token is not True:
            bad.append(f"{where}: the head's autoscaler needs its token mounted, explicitly")
    elif token is not False:
        bad.append(f"{where}: automountServiceAccountToken must be false")
    for c in pod.get("containers", []):
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True \
                or "ALL" not in sc.get("capabilities", {}).get("drop", []):
            bad.append(f"{where}/{c['name']}: container securityContext is not locked down")
        limits = c.get("resources", {}).get("limits", {})
        if not {"cpu", "memory"} <= set(limits):
            bad.append(f"{where}/{c['name']}: no cpu/memory limits")
        if any(e.get("name") == "FORGE_JWT_SECRET" for e in c.get("env", [])):
            bad.append(f"{where}/{c['name']}: the JWT secret as an environment variable")
    secrets = {e.get("secretRef", {}).get("name") for c in pod.get("containers", []) for e in c.get("envFrom", [])}
    secrets |= {e["valueFrom"]["secretKeyRef"]["name"] for c in pod.get("containers", []) for e in c.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})}
    secrets |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    ray = where.startswith(("RayCluster", "RayService", "RayJob h", "RayJob w"))
    if "forge-mlflow-client" in secrets and not ray:
        bad.append(f"{where}: MLflow client credentials belong to Ray pods only")
    if secrets & {"forge-mlflow", "forge-mlflow-auth"} and where != "Deployment forge-mlflow":
        bad.append(f"{where}: MLflow server secrets belong to the MLflow server only")
    jwt = any(v.get("secret", {}).get("secretName") == "forge-jwt" for v in pod.get("volumes", []))
    if jwt != where.startswith("RayService"):
        bad.append(f"{where}: the JWT secret belongs to the Serve pods only")
    return bad


def test_every_pod_template_is_locked_down(built):  # noqa: F811
    name, docs = built
    pods = [p for d in docs for p in pod_specs(d)]
    assert len(pods) >= 8, [w for w, _ in pods]  # heads, workers, the submitter, the CronJob, MLflow
    problems = [msg for where, pod in pods for msg in _problems(where, pod)]
    assert not problems, "\n".join(problems)


def test_ray_token_auth_on_every_cluster_and_every_submitter(built):  # noqa: F811
    _, docs = built
    clusters = {"RayCluster": lambda s: s, "RayJob": lambda s: s["rayClusterSpec"],
                "RayService": lambda s: s["rayClusterConfig"]}
    for doc in docs:
        if doc["kind"] in clusters:
            cluster = clusters[doc["kind"]](doc["spec"])
            assert cluster.get("authOptions", {}).get("mode") == "token", doc["kind"]
            if cluster.get("enableInTreeAutoscaling"):
                assert cluster.get("autoscalerOptions", {}).get("securityContext", {}).get(
                    "allowPrivilegeEscalation") is False, f"{doc['kind']}: the autoscaler container"
    submitters = [(w, p) for d in docs for w, p in pod_specs(d) if w.startswith(("CronJob", "RayJob submitter"))]
    assert submitters
    for where, pod in submitters:
        env = {e["name"]: e for c in pod["containers"] for e in c.get("env", [])}
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", where
        # the token as a file from forge-ray-token (Ray reads RAY_AUTH_TOKEN_PATH), never as an env var
        assert "RAY_AUTH_TOKEN" not in env, where
        folder = env["RAY_AUTH_TOKEN_PATH"]["value"].rsplit("/", 1)[0]
        mounts = {m["mountPath"]: m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
        volume = next(v for v in pod["volumes"] if v["name"] == mounts[folder])
        assert volume["secret"]["secretName"] == "forge-ray-token", where


def test_namespaces_enforce_the_restricted_pod_security_standard(built):  # noqa: F811
    name, docs = built
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    if name == "base":
        assert not namespaces  # the overlays own their namespace
        return
    assert len(namespaces) == 1
    assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_check_catches_a_loosened_template(built):  # noqa: F811
    _, docs = built
    cluster = copy.deepcopy(next(d for d in docs if d["kind"] == "RayCluster"))
    worker = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]
    worker["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    worker["automountServiceAccountToken"] = True
    problems = [m for w, p in pod_specs(cluster) for m in _problems(w, p)]
    assert len(problems) == 2, problems


# ---- the NetworkPolicy port matrix ------------------------------------------------------------------------
NS = "forge"
PODS = {  # who, as (namespace, pod labels); IPs outside the cluster are ("", None)
    "training head": (NS, {"ray.io/node-type": "head", "forge.io/cluster": "training"}),
    "training worker": (NS, {"ray.io/node-type": "worker", "forge.io/cluster": "training"}),
    "serve head": (NS, {"ray.io/node-type": "head", "forge.io/cluster": "serve"}),
    "serve worker": (NS, {"ray.io/node-type": "worker", "forge.io/cluster": "serve"}),
    "pipeline worker": (NS, {"ray.io/node-type": "worker", "forge.io/cluster": "pipeline"}),
    "submitter": (NS, {"forge.io/ray-submitter": "true"}),
    "mlflow": (NS, {"app.kubernetes.io/name": "forge-mlflow"}),
    "other pod here": (NS, {"app": "something-else"}),
    "operator": ("kuberay-system", {"app": "kuberay-operator"}),
    "ingress controller": ("ingress-nginx", {"app": "ingress-nginx"}),
    "prometheus": ("monitoring", {"app": "prometheus"}),
    "pod elsewhere": ("default", {"app": "x"}),
    "dns": ("kube-system", {"k8s-app": "kube-dns"}),
    "internet": ("", None),
}


def _selects(selector: dict, labels: dict | None) -> bool:
    if labels is None:
        return False
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        if e["operator"] == "Exists" and e["key"] not in labels:
            return False
        if e["operator"] == "In" and labels.get(e["key"]) not in e["values"]:
            return False
    return True


def _peer_matches(peer: dict, who: tuple[str, dict | None]) -> bool:
    ns, labels = who
    if "ipBlock" in peer:
        return labels is None  # our ipBlocks exclude private ranges: they stand for the outside world
    if labels is None:
        return False
    ns_ok = _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}) \
        if "namespaceSelector" in peer else ns == NS
    return ns_ok and _selects(peer.get("podSelector", {}), labels)


def _rule_allows(rule: dict, peers_key: str, other: tuple, port: int) -> bool:
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port for p in ports):
        return False
    peers = rule.get(peers_key)
    return not peers or any(_peer_matches(p, other) for p in peers)


def _allowed(policies: list[dict], src: str, dst: str, port: int) -> bool:
    """Whether src may open a connection to dst:port, both directions of policy considered."""
    def side(who: str, direction: str, other: str) -> bool:
        ns, labels = PODS[who]
        if ns != NS:
            return True  # not our namespace: not our policies
        selecting = [p for p in policies if direction in p["spec"]["policyTypes"]
                     and _selects(p["spec"]["podSelector"], labels)]
        if not selecting:
            return True
        key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        return any(_rule_allows(r, peers, PODS[other], port) for p in selecting for r in p["spec"].get(key, []))
    return side(src, "Egress", dst) and side(dst, "Ingress", src)


MATRIX = [  # (from, to, port, allowed)
    ("submitter", "training head", 8265, True),
    ("operator", "serve head", 8265, True),
    ("other pod here", "training head", 8265, False),
    ("serve worker", "training head", 8265, False),
    ("pod elsewhere", "training head", 8265, False),
    ("training worker", "training head", 6379, True),
    ("serve worker", "serve head", 6379, True),
    ("serve worker", "training head", 6379, False),
    ("pipeline worker", "training head", 10001, False),
    ("other pod here", "training head", 10001, False),
    ("submitter", "training head", 10001, False),
    ("ingress controller", "serve head", 8000, True),
    ("ingress controller", "training head", 8000, False),
    ("other pod here", "serve head", 8000, False),
    ("pod elsewhere", "serve worker", 8000, False),
    ("prometheus", "training worker", 8080, True),
    ("prometheus", "serve head", 44217, True),
    ("other pod here", "training worker", 8080, False),
    ("training worker", "mlflow", 5000, True),
    ("submitter", "mlflow", 5000, True),
    ("other pod here", "mlflow", 5000, False),
    ("training worker", "internet", 443, True),
    ("training worker", "internet", 22, False),
    ("training worker", "dns", 53, True),
    ("submitter", "internet", 443, False),
    ("mlflow", "internet", 443, True),
    ("other pod here", "internet", 443, False),
]


@pytest.mark.parametrize("src,dst,port,allowed", MATRIX)
def test_network_policy_port_matrix(built, src, dst, port, allowed):  # noqa: F811
    _, docs = built
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    want = "open" if allowed else "closed"
    assert _allowed(policies, src, dst, port) is allowed, f"{src} -> {dst}:{port} should be {want}"


def test_the_matrix_sees_a_policy_opened_up(built):  # noqa: F811
    _, docs = built
    policies = copy.deepcopy([d for d in docs if d["kind"] == "NetworkPolicy"])
    serve = next(p for p in policies if p["metadata"]["name"] == "forge-serve-from-ingress")
    serve["spec"]["ingress"][0].pop("from")  # port 8000 open to anyone
    assert _allowed(policies, "pod elsewhere", "serve head", 8000)
    assert not _allowed(policies, "pod elsewhere", "serve head", 6379)


# ---- delivery, state and the way in -----------------------------------------------------------------------
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
    assert "digest: ${DIGEST}" in run and "kubectl apply -k" in run
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
    for where, ray_pod in ray_pods:
        refs = [e.get("secretRef", {}).get("name") for c in ray_pod["containers"] for e in c.get("envFrom", [])]
        assert "forge-mlflow-client" in refs, f"{where}: no MLflow credentials"


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


def test_batch_jobs_queue_in_kueue_and_serving_does_not(built):  # noqa: F811
    _, docs = built
    queues = {d["metadata"]["name"]: d for d in docs if d["kind"] == "LocalQueue"}
    cluster_queues = {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterQueue"}
    jobs = [d for d in docs if d["kind"] == "RayJob"]
    assert {j["metadata"]["name"] for j in jobs} == {"forge-pipeline", "forge-batch-predict"}
    for job in jobs:
        queue = job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
        assert queues[queue]["spec"]["clusterQueue"] in cluster_queues
    service = next(d for d in docs if d["kind"] == "RayService")
    assert "kueue.x-k8s.io/queue-name" not in service["metadata"].get("labels", {})


def test_every_referenced_secret_is_created_by_the_script_and_documented(built):  # noqa: F811
    _, docs = built
    text = yaml.safe_dump_all(docs)
    referenced = set(re.findall(r"secretName: ([a-z0-9-]+)", text)) | set(re.findall(
        r"secretKeyRef:\s*\n\s*key: [^\n]+\n\s*name: ([a-z0-9-]+)", text)) | set(re.findall(
            r"secretRef:\s*\n\s*name: ([a-z0-9-]+)", text)) | set(
                re.findall(r"urlSecret:\s*\n\s*key: [^\n]+\n\s*name: ([a-z0-9-]+)", text))
    referenced.discard("forge-tls")  # issued by cert-manager (serve-edge.yaml's annotation)
    script = (ROOT / "scripts" / "create-secrets.sh").read_text()
    example = {d["metadata"]["name"] for d in yaml.safe_load_all((ROOT / "kuberay" / "base" /
                                                                  "secrets.example.yaml").read_text())}
    assert {"forge-jwt", "forge-ray-token", "forge-mlflow-auth", "forge-mlflow-client",
            "forge-alert-webhooks"} <= referenced, referenced
    for name in referenced:
        assert f"apply {name} " in script, f"scripts/create-secrets.sh does not create {name}"
        assert name in example, f"secrets.example.yaml does not describe {name}"
