"""checkov's Kubernetes checks over the rendered overlays: zero failed checks, and every skip written in the
manifest it applies to, with a reason. checkov reads the built-in kinds (Deployments, CronJobs, Services...); the
pod templates inside RayCluster, RayJob and RayService are walked by test_hardening.py.

One checkov process reads every rendered file (each overlay, and a copy loosened on purpose): its start is most of
its time, and `make lint` runs this module too.

checkov does not know KubeRay's kinds, so every pod template of a RayCluster, RayJob and RayService is also checked
as the Pod KubeRay would make of it (its labels, annotations and spec, with the NetworkPolicies beside it): a skip
for a Ray pod is written on its template, with its reason."""

import copy
import json
import subprocess

import pytest
import yaml

from tests.conftest import ROOT, require_binary

CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"  # `make tools` installs it apart (constraints-tools.txt)
OVERLAYS = ["overlays/dev", "overlays/prod"]  # base is not applied on its own (it has no namespace)


def _render(overlay: str) -> list[dict]:
    r = subprocess.run([require_binary("kubectl"), "kustomize", str(ROOT / "kuberay" / overlay)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def _ray_templates(doc: dict) -> list[tuple[str, dict]]:
    spec = doc.get("spec", {})
    cluster = {"RayCluster": spec, "RayJob": spec.get("rayClusterSpec"),
               "RayService": spec.get("rayClusterConfig")}.get(doc["kind"])
    if cluster is None:
        return []
    groups = [("head", cluster["headGroupSpec"])] + [(g["groupName"], g) for g in cluster["workerGroupSpecs"]]
    return [(f"{doc['metadata']['name']}-{name}", g["template"]) for name, g in groups]


def ray_pods(docs: list[dict]) -> list[dict]:
    """The Pods KubeRay makes of the Ray templates (as checkov can read them), and the NetworkPolicies."""
    pods = [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {**template.get("metadata", {}), "name": name,
                          "namespace": doc["metadata"].get("namespace", "forge")},
             "spec": template["spec"]} for doc in docs for name, template in _ray_templates(doc)]
    return pods + [d for d in docs if d["kind"] == "NetworkPolicy"]


def _loosened() -> list[dict]:
    loose = copy.deepcopy(_render("overlays/prod"))
    mlflow = next(d for d in loose if d["kind"] == "Deployment" and d["metadata"]["name"] == "forge-mlflow")
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"privileged": True}
    container.pop("resources")
    worker = next(d for d in ray_pods(loose) if d["metadata"]["name"] == "forge-cpu")
    worker["metadata"]["name"] = "forge-cpu-loosened"
    worker["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return loose + [worker]


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, dict]:
    """checkov's results per rendered file: {"overlays/dev": ..., "overlays/prod": ..., "loosened": ...}."""
    binary = str(CHECKOV) if CHECKOV.exists() else require_binary("checkov")
    folder = tmp_path_factory.mktemp("checkov")
    files = {}
    rendered = {o: _render(o) + _render(f"{o}/jobs") for o in OVERLAYS}
    sets = [*rendered.items(), *((f"{o} ray pods", ray_pods(docs)) for o, docs in rendered.items()),
            ("loosened", _loosened())]
    for name, docs in sets:
        files[name] = folder / f"{name.replace('/', '-').replace(' ', '-')}.yaml"
        files[name].write_text(yaml.safe_dump_all(docs, sort_keys=False))
    r = subprocess.run([binary, "-f", *map(str, files.values()), "--framework", "kubernetes", "--compact",
                        "--skip-download", "-o", "json"], capture_output=True, text=True, timeout=300)
    assert r.stdout.strip(), r.stderr[-3000:]
    out = json.loads(r.stdout)
    results = (out[0] if isinstance(out, list) else out).get("results", {})
    by_file: dict[str, dict] = {name: {"failed_checks": [], "skipped_checks": [], "passed_checks": []}
                                for name in files}
    for kind in ("failed_checks", "skipped_checks", "passed_checks"):
        for check in results.get(kind, []):
            name = next(n for n, f in files.items() if check["file_path"].endswith(f.name))
            by_file[name][kind].append(check)
    return by_file


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_finds_nothing_and_every_skip_has_a_reason(overlay, checked):
    results = checked[overlay]
    failed = [(f["check_id"], f["resource"], f["check_name"]) for f in results["failed_checks"]]
    assert len(results["passed_checks"]) > 100 and not failed, failed
    for skip in results["skipped_checks"]:
        reason = skip.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 20, (skip["check_id"], skip["resource"], reason)
    skipped = {(f["check_id"], f["resource"].split(".")[-1]) for f in results["skipped_checks"]}
    assert skipped <= {("CKV_K8S_35", "forge-mlflow"), ("CKV_K8S_40", "forge-mlflow"),
                       ("CKV_K8S_40", "forge-retrain")}, skipped


RAY_SKIPS = {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_40", "CKV_K8S_35"}  # probes KubeRay injects, UID, env credentials


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_passes_every_ray_pod_with_its_reasons(overlay, checked):
    results = checked[f"{overlay} ray pods"]
    failed = [(f["check_id"], f["resource"], f["check_name"]) for f in results["failed_checks"]]
    assert len(results["passed_checks"]) > 300 and not failed, failed
    by_pod: dict[str, set[str]] = {}
    for skip in results["skipped_checks"]:
        assert len(skip.get("check_result", {}).get("suppress_comment", "")) > 20, skip["check_id"]
        by_pod.setdefault(skip["resource"].split(".")[-1], set()).add(skip["check_id"])
    assert len(by_pod) >= 6, by_pod  # heads and workers of the RayCluster, the RayService and both RayJobs
    for pod, skipped in by_pod.items():
        # a ServiceAccount token only on the heads whose autoscaler calls the API server
        token = {"CKV_K8S_38"} if pod in ("forge-head", "forge-serve-head") else set()
        assert skipped == RAY_SKIPS | token, (pod, skipped)


def test_checkov_fails_a_loosened_deployment_and_ray_pod(checked):
    failed = {f["check_id"] for f in checked["loosened"]["failed_checks"]}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_11", "CKV_K8S_13"} <= failed, failed
    ray = {f["check_id"] for f in checked["loosened"]["failed_checks"]
           if f["resource"].endswith("forge-cpu-loosened")}
    assert {"CKV_K8S_16", "CKV_K8S_20"} <= ray, ray
