"""The NetworkPolicies of every rendered overlay, as a port matrix: who may open a connection to whom.

The pods' labels are read from the rendered templates (plus the `ray.io/node-type` KubeRay adds), so a template
that loses or gains a label moves its row here. Endpoints that are no pod (the internet, the API server, NodeLocal
DNS, a VPC endpoint) are addresses, matched against `ipBlock`s as Kubernetes does. What only a real cluster's CNI
proves (that it enforces these) is in docs/deploy.md.
"""

import copy
import ipaddress

import pytest

from tests.deploy.test_manifests import built  # noqa: F401  (the rendered overlays, a fixture)

OUR = "<ours>"  # our namespace, whatever the overlay names it


def _template_labels(docs: list[dict]) -> dict[str, dict]:
    """Labels of our pods, by role, as the rendered templates give them."""
    find = {d["kind"]: d for d in docs}
    out: dict[str, dict] = {}
    for role, _doc, cluster in (("training", find["RayCluster"], find["RayCluster"]["spec"]),
                               ("serve", find["RayService"], find["RayService"]["spec"]["rayClusterConfig"]),
                               ("pipeline", find["RayJob"], find["RayJob"]["spec"]["rayClusterSpec"])):
        out[f"{role} head"] = {**cluster["headGroupSpec"]["template"]["metadata"]["labels"], "ray.io/node-type": "head"}
        out[f"{role} worker"] = {**cluster["workerGroupSpecs"][0]["template"]["metadata"]["labels"],
                                 "ray.io/node-type": "worker"}
    out["submitter"] = find["RayJob"]["spec"]["submitterPodTemplate"]["metadata"]["labels"]
    out["cronjob"] = find["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    out["mlflow"] = find["Deployment"]["spec"]["template"]["metadata"]["labels"]
    out["acme solver"] = {"acme.cert-manager.io/http01-solver": "true"}
    out["other pod here"] = {"app": "something-else"}
    return out


ELSEWHERE = {  # (namespace, labels) of pods outside ours
    "operator": ("kuberay-system", {"app": "kuberay-operator"}),
    "ingress controller": ("ingress-nginx", {"app": "ingress-nginx"}),
    "prometheus": ("monitoring", {"app": "prometheus"}),
    "pod elsewhere": ("default", {"app": "x"}),
    "dns": ("kube-system", {"k8s-app": "kube-dns"}),
}
ADDRESSES = {  # endpoints that are no pod
    "internet": "52.216.8.1",  # an AWS S3 address
    "apiserver": "10.0.0.1",  # the overlays' API server endpoint
    "nodelocal dns": "169.254.20.10",
    "private vpc endpoint": "10.20.30.40",
    "metadata service": "169.254.169.254",
}


def _who(name: str, ours: dict[str, dict]) -> tuple[str, dict | None, str | None]:
    if name in ours:
        return OUR, ours[name], None
    if name in ELSEWHERE:
        return (*ELSEWHERE[name], None)
    return "", None, ADDRESSES[name]


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
        if e["operator"] not in ("Exists", "In"):
            raise AssertionError(f"the matrix does not know the operator {e['operator']}: teach it")
    return True


def _in_block(block: dict, ip: str | None) -> bool:
    if ip is None:  # a pod: whether an ipBlock matches pod IPs is the CNI's choice; ours never mean pods
        return False
    address = ipaddress.ip_address(ip)
    return address in ipaddress.ip_network(block["cidr"]) and not any(
        address in ipaddress.ip_network(e) for e in block.get("except", []))


def _peer_matches(peer: dict, who: tuple) -> bool:
    ns, labels, ip = who
    if "ipBlock" in peer:
        return _in_block(peer["ipBlock"], ip)
    if labels is None:
        return False
    ns_ok = _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}) \
        if "namespaceSelector" in peer else ns == OUR
    return ns_ok and _selects(peer.get("podSelector", {}), labels)


def _rule_allows(rule: dict, peers_key: str, other: tuple, port: int) -> bool:
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port for p in ports):
        return False
    peers = rule.get(peers_key)
    return not peers or any(_peer_matches(p, other) for p in peers)


def allowed(docs: list[dict], src: str, dst: str, port: int) -> bool:
    """Whether src may open a connection to dst:port, both ends' policies considered."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    ours = _template_labels(docs)

    def side(who: str, direction: str, other: str) -> bool:
        ns, labels, _ = _who(who, ours)
        if ns != OUR:
            return True  # not our namespace: not our policies
        selecting = [p for p in policies if direction in p["spec"]["policyTypes"]
                     and _selects(p["spec"]["podSelector"], labels)]
        if not selecting:
            return True
        key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        return any(_rule_allows(r, peers, _who(other, ours), port) for p in selecting
                   for r in p["spec"].get(key, []))
    return side(src, "Egress", dst) and side(dst, "Ingress", src)


MATRIX = [  # (from, to, port, allowed)
    # the dashboard and Jobs API: the operator and submitters only
    ("submitter", "training head", 8265, True),
    ("cronjob", "training head", 8265, True),
    ("operator", "serve head", 8265, True),
    ("other pod here", "training head", 8265, False),
    ("serve worker", "training head", 8265, False),
    ("pod elsewhere", "training head", 8265, False),
    # Ray's own ports: inside one cluster
    ("training worker", "training head", 6379, True),
    ("serve worker", "serve head", 6379, True),
    ("pipeline worker", "pipeline head", 6379, True),
    ("serve worker", "training head", 6379, False),
    ("pipeline worker", "training head", 10001, False),
    ("other pod here", "training head", 10001, False),
    ("submitter", "training head", 10001, False),
    # Serve: from the ingress controller, and the operator's health check on the Serve head
    ("ingress controller", "serve head", 8000, True),
    ("ingress controller", "serve worker", 8000, True),
    ("operator", "serve head", 8000, True),
    ("operator", "serve worker", 8000, False),
    ("ingress controller", "training head", 8000, False),
    ("other pod here", "serve head", 8000, False),
    ("pod elsewhere", "serve worker", 8000, False),
    # cert-manager's HTTP-01 solver
    ("ingress controller", "acme solver", 8089, True),
    ("pod elsewhere", "acme solver", 8089, False),
    # metrics
    ("prometheus", "training worker", 8080, True),
    ("prometheus", "serve head", 44217, True),
    ("other pod here", "training worker", 8080, False),
    # MLflow
    ("training worker", "mlflow", 5000, True),
    ("serve worker", "mlflow", 5000, True),
    ("submitter", "mlflow", 5000, True),
    ("other pod here", "mlflow", 5000, False),
    # the object store: Ray pods and MLflow, public HTTPS; not SSH, not a private address unless the overlay says
    ("training worker", "internet", 443, True),
    ("serve worker", "internet", 443, True),
    ("pipeline head", "internet", 443, True),
    ("mlflow", "internet", 443, True),
    ("training worker", "internet", 22, False),
    ("training worker", "private vpc endpoint", 443, False),
    ("submitter", "internet", 443, False),
    ("cronjob", "internet", 443, False),
    ("other pod here", "internet", 443, False),
    ("training worker", "metadata service", 80, False),
    ("training worker", "metadata service", 443, False),  # link-local is no public address
    # the API server: the autoscaling heads only
    ("training head", "apiserver", 6443, True),
    ("serve head", "apiserver", 6443, True),
    ("pipeline head", "apiserver", 6443, False),
    ("training worker", "apiserver", 6443, False),
    ("serve worker", "apiserver", 6443, False),
    ("mlflow", "apiserver", 6443, False),
    ("submitter", "apiserver", 6443, False),
    # DNS, kube-dns and NodeLocal DNSCache
    ("training worker", "dns", 53, True),
    ("submitter", "nodelocal dns", 53, True),
    ("mlflow", "nodelocal dns", 53, True),
    ("training worker", "nodelocal dns", 80, False),
]


@pytest.mark.parametrize("src,dst,port,want", MATRIX)
def test_network_policy_port_matrix(built, src, dst, port, want):  # noqa: F811
    _, docs = built
    assert allowed(docs, src, dst, port) is want, f"{src} -> {dst}:{port} should be {'open' if want else 'closed'}"


def test_the_matrix_sees_a_policy_opened_up(built):  # noqa: F811
    _, docs = built
    docs = copy.deepcopy(docs)
    serve = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "forge-serve-from-ingress")
    serve["spec"]["ingress"][0].pop("from")  # port 8000 open to anyone
    assert allowed(docs, "pod elsewhere", "serve head", 8000)
    assert not allowed(docs, "pod elsewhere", "serve head", 6379)


def test_the_matrix_follows_the_templates_labels(built):  # noqa: F811
    _, docs = built
    docs = copy.deepcopy(docs)
    worker = next(d for d in docs if d["kind"] == "RayCluster")["spec"]["workerGroupSpecs"][0]["template"]
    del worker["metadata"]["labels"]["forge.io/object-store"]  # a template that forgets its label loses the store
    assert not allowed(docs, "training worker", "internet", 443)


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_each_overlay_sets_where_its_api_server_and_object_store_are(overlay):
    """The addresses the base cannot know are patched by each overlay, and a patch really moves them."""
    from tests.deploy.test_manifests import render
    docs = render(overlay) + render(f"{overlay}/jobs")
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    apiserver = policies["forge-ray-apiserver"]["spec"]["egress"][0]
    assert apiserver["to"][0]["ipBlock"]["cidr"].endswith("/32") and apiserver["ports"][0]["port"] in (443, 6443)
    store = policies["forge-object-store"]["spec"]["egress"][0]
    moved = copy.deepcopy(docs)
    policy = next(d for d in moved if d.get("metadata", {}).get("name") == "forge-object-store")
    policy["spec"]["egress"][0] = {"to": [{"ipBlock": {"cidr": "10.20.30.0/24"}}], "ports": [{"port": 9000}]}
    assert allowed(moved, "training worker", "private vpc endpoint", 9000)  # an in-cluster MinIO, say
    assert not allowed(moved, "training worker", "internet", 443)
    assert store["ports"][0]["port"] == 443
