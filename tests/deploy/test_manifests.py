"""kuberay/, Dockerfile and .github/: every overlay builds, every object validates strictly, versions agree."""

import copy
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, require_binary

VENDORED = Path(__file__).parent / "crds"  # pinned upstream CRDs (see crds/PROVENANCE.md)

CRDS = {
    ("ray.io/v1", "RayCluster"): "kuberay/ray.io_rayclusters.yaml",
    ("ray.io/v1", "RayJob"): "kuberay/ray.io_rayjobs.yaml",
    ("ray.io/v1", "RayService"): "kuberay/ray.io_rayservices.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "prometheus-operator/monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"):
        "prometheus-operator/monitoring.coreos.com_alertmanagerconfigs.yaml",
    ("kueue.x-k8s.io/v1beta2", "ResourceFlavor"): "kueue/kueue.x-k8s.io_resourceflavors.yaml",
    ("kueue.x-k8s.io/v1beta2", "ClusterQueue"): "kueue/kueue.x-k8s.io_clusterqueues.yaml",
    ("kueue.x-k8s.io/v1beta2", "LocalQueue"): "kueue/kueue.x-k8s.io_localqueues.yaml",
}
OVERLAYS = ["base", "overlays/dev", "overlays/prod"]
# Each with its one-shot RayJobs, rendered apart: an overlay applies the long-lived parts, its jobs/ the RayJobs.
JOBS = {"base": "jobs", "overlays/dev": "overlays/dev/jobs", "overlays/prod": "overlays/prod/jobs"}


def render(path: str) -> list[dict]:
    r = subprocess.run([require_binary("kubectl"), "kustomize", str(ROOT / "kuberay" / path)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def _strict(schema: dict) -> dict:
    """An unknown field is an error (as kubeconform -strict): close every object that lists properties."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node \
                    and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(s)
    s["properties"]["metadata"] = {"type": "object"}
    return s


@functools.cache
def _crd_schema(api_version: str, kind: str) -> dict:
    # libyaml's loader where PyYAML has it: the pure-Python one took 18 s over the CRDs of one overlay
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((VENDORED / CRDS[(api_version, kind)]).read_text(), Loader=loader)  # nosec B506: safe loader
    version = api_version.split("/")[1]
    spec = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return _strict(spec["schema"]["openAPIV3Schema"])


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request):
    """(name, every object of the overlay and of its one-shot jobs)."""
    return request.param, render(request.param) + render(JOBS[request.param])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_shot_rayjobs_are_not_applied_with_the_overlay(overlay):
    """A RayJob runs when it is applied: in the overlay it would start before its input is on the object store and
    fail through its backoffLimit, never to run again. They are applied apart (docs/deploy.md's order)."""
    assert not [d["metadata"]["name"] for d in render(overlay) if d["kind"] == "RayJob"]
    assert {d["metadata"]["name"] for d in render(JOBS[overlay]) if d["kind"] == "RayJob"} == {
        "forge-pipeline", "forge-batch-predict"}


def test_every_object_validates(built):
    import kubernetes_validate

    name, docs = built
    kinds = {d["kind"] for d in docs}
    assert {"RayCluster", "RayJob", "RayService", "PodMonitor", "PrometheusRule", "Deployment", "Service",
            "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding", "CronJob", "ConfigMap", "Ingress",
            "PodDisruptionBudget", "ResourceFlavor", "ClusterQueue", "LocalQueue", "AlertmanagerConfig"} <= kinds
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRDS:
            # No metaschema check: CRDs carry Go regexes ("(?i)") that Python's re rejects as patterns.
            jsonschema.Draft7Validator(_crd_schema(*key)).validate(doc)
        else:
            kubernetes_validate.validate(doc, "1.31", strict=True)
    assert not any(d["kind"] == "Secret" for d in docs), "secrets are referenced, never committed"


def test_strict_validation_rejects_unknown_fields():
    doc = yaml.safe_load((ROOT / "kuberay" / "base" / "raycluster.yaml").read_text())
    doc["spec"]["headGroupSpec"]["rayStartParamz"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_crd_schema("ray.io/v1", "RayCluster")).validate(doc)


def test_generated_manifests_are_fresh():
    sys.path.insert(0, str(ROOT / "scripts"))
    import sync_manifests

    for path, make in sync_manifests.FILES.items():
        assert path.read_text() == make(), f"{path.name} is stale: run python scripts/sync_manifests.py"


def test_serve_configs_parse_and_the_rayservice_serves_the_prod_project():
    """serve_apps/forge.yaml serves the demo's project; the RayService serves kuberay/forge.prod.yaml's (docs off,
    RS256), never the demo's, and both parse with Ray Serve's own schema."""
    from ray.serve.schema import ServeDeploySchema

    demo = yaml.safe_load((ROOT / "serve_apps" / "forge.yaml").read_text())
    ServeDeploySchema.model_validate(demo)
    assert demo["applications"][0]["args"]["config"] == "examples/churn/forge.yaml"
    svc = yaml.safe_load((ROOT / "kuberay" / "base" / "rayservice.yaml").read_text())
    prod = yaml.safe_load(svc["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(prod)
    assert prod["applications"][0]["args"]["config"] == "kuberay/forge.prod.yaml"
    assert "kuberay/forge.prod.yaml" in (ROOT / "Dockerfile").read_text()  # it is in the image, where the path points
    from forge.config import load_config
    from forge.serving.app import docs_enabled

    project = load_config(ROOT / "kuberay" / "forge.prod.yaml", environ={})
    assert not docs_enabled(project) and project.serving.auth.algorithm == "RS256"
    assert not project.serving.auth.dev_mode and project.serving.auth.public_key_path.startswith("/var/run/secrets/")
    mounts = {m["mountPath"] for c in svc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"] for m in c["volumeMounts"]}
    assert str(__import__("pathlib").PurePosixPath(project.serving.auth.public_key_path).parent) in mounts


def test_versions_agree_everywhere(built):
    _, docs = built
    pins = dict(line.split(";")[0].strip().split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    ray_version = pins["ray"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    base_tag = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\S+)", dockerfile, re.M).group(1)
    assert base_tag.startswith(ray_version + "-py311") and re.search(r"^FROM \$\{RAY_IMAGE\}$", dockerfile, re.M)
    text = json.dumps(docs)
    assert set(re.findall(r'"rayVersion": "([^"]+)"', text)) == {ray_version}
    for image in set(re.findall(r"rayproject/ray:([\w.\-]+)", text)):
        assert image.startswith(ray_version)
    assert '"image": "forge"' not in text  # every image went through the kustomize image mapping


def test_hadolint_clean():
    exe = Path(sys.executable).parent / "hadolint"
    r = subprocess.run([str(exe), "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_workflows_lint_and_schema():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) >= 2
    bin_dir = Path(sys.executable).parent
    r = subprocess.run([str(bin_dir / "actionlint"), *map(str, workflows)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(bin_dir / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                        *map(str, workflows)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for wf in workflows:
        doc = yaml.safe_load(wf.read_text())
        assert "permissions" in doc
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    assert re.search(r"@[0-9a-f]{40}$", step["uses"]), f"{step['uses']} is not pinned to a SHA"
