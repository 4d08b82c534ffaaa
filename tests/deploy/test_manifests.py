"""kuberay/, Dockerfile and .github/: every overlay builds, every object validates strictly, versions agree."""

import copy
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


def _crd_schema(api_version: str, kind: str) -> dict:
    crd = yaml.safe_load((VENDORED / CRDS[(api_version, kind)]).read_text())
    version = api_version.split("/")[1]
    spec = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return _strict(spec["schema"]["openAPIV3Schema"])


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request):
    kubectl = require_binary("kubectl")
    r = subprocess.run([kubectl, "kustomize", str(ROOT / "kuberay" / request.param)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return request.param, [d for d in yaml.safe_load_all(r.stdout) if d]


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


def test_serve_config_parses_with_ray_serve_schema_and_matches_rayservice():
    from ray.serve.schema import ServeDeploySchema

    text = (ROOT / "serve_apps" / "forge.yaml").read_text()
    ServeDeploySchema.model_validate(yaml.safe_load(text))
    svc = yaml.safe_load((ROOT / "kuberay" / "base" / "rayservice.yaml").read_text())
    assert svc["spec"]["serveConfigV2"] == text
    ServeDeploySchema.model_validate(yaml.safe_load(svc["spec"]["serveConfigV2"]))


def test_versions_agree_everywhere(built):
    _, docs = built
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    ray_version = pins["ray"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    base_tag = re.search(r"^FROM rayproject/ray:(\S+)", dockerfile, re.M).group(1)
    assert base_tag.startswith(ray_version + "-py311")
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
