"""kuberay/base/admission.yaml's ValidatingAdmissionPolicy, its CEL evaluated with cel-python on the changes a Ray
head's ServiceAccount could send: the autoscaler's (worker counts) pass, anything else is refused, and nobody
else's requests are matched. Only a real API server (1.30+) proves it enforces this; the CEL here is the same."""

import copy

import celpy
import pytest

from tests.deploy.test_manifests import render

HEAD = "system:serviceaccount:forge-prod:forge-ray-head"
SERVE_HEAD = "system:serviceaccount:forge-prod:forge-serve-head"
OPERATOR = "system:serviceaccount:kuberay-system:kuberay-operator"


@pytest.fixture(scope="module")
def policy_and_cluster() -> tuple[dict, dict]:
    docs = render("overlays/prod")
    policy = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    return policy, next(d for d in docs if d["kind"] == "RayCluster")


def _evaluate(expression: str, user: str, old: dict, new: dict) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    return bool(program.evaluate({"request": celpy.json_to_cel({"userInfo": {"username": user}}),
                                  "object": celpy.json_to_cel(new), "oldObject": celpy.json_to_cel(old)}))


def admitted(policy: dict, user: str, old: dict, new: dict) -> bool:
    """As the API server decides an UPDATE of a RayCluster: unmatched requests pass; matched ones must validate."""
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert any("rayclusters" in r["resources"] and "UPDATE" in r["operations"] for r in rules)
    if not all(_evaluate(c["expression"], user, old, new) for c in policy["spec"]["matchConditions"]):
        return True
    return all(_evaluate(v["expression"], user, old, new) for v in policy["spec"]["validations"])


def _changed(cluster: dict, change) -> dict:
    new = copy.deepcopy(cluster)
    change(new["spec"])
    return new


def test_the_autoscaler_may_scale_workers(policy_and_cluster):
    policy, cluster = policy_and_cluster

    def scale(spec):
        spec["workerGroupSpecs"][0]["replicas"] = 3
        spec["workerGroupSpecs"][0].setdefault("scaleStrategy", {})["workersToDelete"] = ["forge-cpu-abcde"]
    for user in (HEAD, SERVE_HEAD):
        assert admitted(policy, user, cluster, _changed(cluster, scale))


@pytest.mark.parametrize("what,change", [
    ("a worker's image", lambda s: s["workerGroupSpecs"][0]["template"]["spec"]["containers"][0].update(
        image="evil/image:1")),
    ("the head's template", lambda s: s["headGroupSpec"]["template"]["spec"].update(serviceAccountName="other")),
    ("a worker's start parameters", lambda s: s["workerGroupSpecs"][0]["rayStartParams"].update(
        {"num-cpus": "64"})),
    ("a new worker group", lambda s: s["workerGroupSpecs"].append(copy.deepcopy(s["workerGroupSpecs"][0]) | {
        "groupName": "extra"})),
    ("a renamed group", lambda s: s["workerGroupSpecs"][0].update(groupName="renamed")),
])
def test_a_head_may_change_nothing_else(policy_and_cluster, what, change):
    policy, cluster = policy_and_cluster
    assert not admitted(policy, HEAD, cluster, _changed(cluster, change)), what


def test_other_users_are_not_this_policys_business(policy_and_cluster):
    policy, cluster = policy_and_cluster
    new = _changed(cluster, lambda s: s["workerGroupSpecs"][0]["template"]["spec"]["containers"][0].update(
        image="ghcr.io/mlops-forge/forge@sha256:" + "1" * 64))
    assert admitted(policy, OPERATOR, cluster, new)  # the deploy workflow's or the operator's own updates
    assert admitted(policy, "system:serviceaccount:forge-prod:forge-ray-head-not", cluster, new)
    assert not admitted(policy, HEAD, cluster, new)
