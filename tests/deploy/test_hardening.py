"""Every pod template in every rendered overlay and its jobs, the KubeRay ones included: locked down by role.

securityContext (non-root, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault, read-only
root filesystem), resource limits, a ServiceAccount token only on the heads whose autoscaler calls the API server,
each role's secrets and no other's, every secret file readable by the container's user and by nobody else, Ray
token auth on every cluster and with every submitter, the Roles those tokens carry (KubeRay's own included), PSA
`restricted` on the namespaces. What only a real cluster proves is in docs/deploy.md.
"""

import copy

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


# Which secrets each role's pods may hold (rbac.yaml and docs/deploy.md say why): Serve pods verify and read,
# training pods sign and write, submitters hold only the Ray token, MLflow its own. The JWT signing secret of HS256
# (forge-jwt) is in no pod: production verifies RS256 tokens with a public key.
SECRETS_BY_ROLE = {
    "serve": {"forge-jwt-public", "forge-model-verify", "forge-serve-s3", "forge-mlflow-reader"},
    "training": {"forge-model-signing", "forge-secrets", "forge-mlflow-client"},
    "submitter": {"forge-ray-token"},
    "mlflow": {"forge-mlflow", "forge-mlflow-auth"},
}


def role(where: str) -> str:
    if where.startswith("RayService"):
        return "serve"
    if where.startswith(("RayCluster", "RayJob head", "RayJob worker")):
        return "training"
    if where.startswith(("CronJob", "RayJob submitter")):
        return "submitter"
    return "mlflow" if where == "Deployment forge-mlflow" else "other"


def secrets_of(pod: dict) -> set[str]:
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    names = {e["secretRef"]["name"] for c in containers for e in c.get("envFrom", []) if "secretRef" in e}
    names |= {e["valueFrom"]["secretKeyRef"]["name"] for c in containers for e in c.get("env", [])
              if "secretKeyRef" in e.get("valueFrom", {})}
    return names | {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}


def unreadable_secret_files(where: str, pod: dict) -> list[str]:
    """Secret volumes are owned by root: the container's user reads them through the group (fsGroup) or not at all."""
    psc = pod.get("securityContext", {})
    bad = []
    for v in pod.get("volumes", []):
        if "secret" not in v:
            continue
        modes = [i["mode"] for i in v["secret"].get("items", []) if "mode" in i] or [v["secret"].get("defaultMode", 0o644)]
        for mode in modes:
            by_group = psc.get("fsGroup") is not None and mode & 0o040
            if not (mode & 0o004 or by_group):
                bad.append(f"{where}: {v['secret']['secretName']} (mode {mode:o}) is unreadable by UID "
                           f"{psc.get('runAsUser')}: set fsGroup, or a mode with group read")
            if mode & 0o007:
                bad.append(f"{where}: {v['secret']['secretName']} (mode {mode:o}) is readable by any user")
    return bad


def _problems(where: str, pod: dict) -> list[str]:
    bad = []
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        bad.append(f"{where}: pod securityContext needs runAsNonRoot and seccomp RuntimeDefault")
    token = pod.get("automountServiceAccountToken")
    if where in ("RayCluster head", "RayService head"):  # the two clusters with an in-tree autoscaler
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
        if any(e.get("name") in ("FORGE_JWT_SECRET", "RAY_AUTH_TOKEN") for e in c.get("env", [])):
            bad.append(f"{where}/{c['name']}: a secret as an environment variable")
    foreign = secrets_of(pod) - SECRETS_BY_ROLE.get(role(where), set())
    if foreign:
        bad.append(f"{where}: holds {sorted(foreign)}, which its role ({role(where)}) does not need")
    return bad + unreadable_secret_files(where, pod)


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




def test_the_check_catches_a_secret_in_the_wrong_role_or_unreadable(built):  # noqa: F811
    _, docs = built
    service = copy.deepcopy(next(d for d in docs if d["kind"] == "RayService"))
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    head["volumes"].append({"name": "signing", "secret": {"secretName": "forge-model-signing", "defaultMode": 0o440}})
    assert any("['forge-model-signing']" in m for m in _problems("RayService head", head))
    del head["securityContext"]["fsGroup"]  # root-owned 0440 files: UID 1000 cannot read its JWT key
    assert any("unreadable by UID 1000" in m for m in unreadable_secret_files("RayService head", head))
    head["securityContext"]["fsGroup"] = 100
    head["volumes"][0 if "secret" in head["volumes"][0] else -1]["secret"]["defaultMode"] = 0o444
    assert any("readable by any user" in m for m in unreadable_secret_files("RayService head", head))


# KubeRay makes this Role for the head of a cluster with enableInTreeAutoscaling and binds it to the head's
# ServiceAccount (ray-operator/controllers/ray/common/rbac.go, BuildRole, at 9541bb5e): a head gets it on top of ours.
KUBERAY_AUTOSCALER_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]},
]
ALLOWED = {("", "pods"): {"get", "list", "watch"}, ("", "pods/status"): {"get"},
           ("ray.io", "rayclusters"): {"get", "list", "watch", "patch"}}


def rights(docs: list[dict]) -> dict[str, list[dict]]:
    """Rules each ServiceAccount holds: our RoleBindings' Roles, and KubeRay's for autoscaling heads."""
    roles = {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == "Role"}
    out: dict[str, list[dict]] = {d["metadata"]["name"]: [] for d in docs if d["kind"] == "ServiceAccount"}
    for binding in (d for d in docs if d["kind"] == "RoleBinding"):
        for subject in binding["subjects"]:
            out.setdefault(subject["name"], []).extend(roles[binding["roleRef"]["name"]])
    for doc in docs:
        cluster = {"RayCluster": doc.get("spec"), "RayService": doc.get("spec", {}).get("rayClusterConfig")}.get(
            doc["kind"])
        if cluster and cluster.get("enableInTreeAutoscaling"):
            out[cluster["headGroupSpec"]["template"]["spec"]["serviceAccountName"]] += KUBERAY_AUTOSCALER_RULES
    return out


def excess_rights(docs: list[dict]) -> list[str]:
    held = rights(docs)
    bad = [f"{sa} holds rights" for sa, rules in held.items() if rules and sa not in ("forge-ray-head",
                                                                                         "forge-serve-head")]
    for sa, rules in held.items():
        for rule in rules:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    extra = set(rule["verbs"]) - ALLOWED.get((group, resource), set())
                    if extra:
                        bad.append(f"{sa}: {sorted(extra)} on {group or 'core'}/{resource}")
    return bad


def test_service_accounts_hold_only_what_an_autoscaler_needs(built):  # noqa: F811
    _, docs = built
    assert {sa for sa, rules in rights(docs).items() if rules} == {"forge-ray-head", "forge-serve-head"}
    assert not excess_rights(docs)
    assert not {d["kind"] for d in docs} & {"ClusterRole", "ClusterRoleBinding"}, "no cluster-wide rights"
    # KubeRay's Role lets a head patch any RayCluster: the admission policy narrows that to worker counts
    policy = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_a_head_given_more_is_caught(built):  # noqa: F811
    _, docs = built
    docs = copy.deepcopy(docs)
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "forge-ray-autoscaler")
    role["rules"][0]["verbs"].append("patch")  # patching pods: a head could re-image its workers
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    binding["subjects"].append({"kind": "ServiceAccount", "name": "forge-ray-worker"})
    assert set(excess_rights(docs)) >= {"forge-ray-head: ['patch'] on core/pods", "forge-ray-worker holds rights"}
