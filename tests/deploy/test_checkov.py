"""checkov's Kubernetes checks over the rendered overlays: zero failed checks, and every skip written in the
manifest it applies to, with a reason. checkov reads the built-in kinds (Deployments, CronJobs, Services...); the
pod templates inside RayCluster, RayJob and RayService are walked by test_hardening.py."""

import copy
import json
import subprocess

import pytest
import yaml

from tests.conftest import ROOT, require_binary

CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"  # make setup installs it apart (constraints-tools.txt)


def _render(overlay: str) -> list[dict]:
    r = subprocess.run([require_binary("kubectl"), "kustomize", str(ROOT / "kuberay" / overlay)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def _checkov(docs: list[dict], tmp_path) -> dict:
    binary = str(CHECKOV) if CHECKOV.exists() else require_binary("checkov")
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    r = subprocess.run([binary, "-f", str(path), "--framework", "kubernetes", "--quiet", "--compact",
                        "--skip-download", "-o", "json"], capture_output=True, text=True, timeout=300)
    assert r.stdout.strip(), r.stderr[-3000:]
    out = json.loads(r.stdout)
    return out[0] if isinstance(out, list) else out


def _results(out: dict) -> dict:
    # with nothing failed and nothing skipped checkov prints only a summary
    return out.get("results", {"failed_checks": [], "skipped_checks": [], "passed_checks": []})


# base is not applied on its own (it has no namespace: the overlays own one)
@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_checkov_finds_nothing_and_every_skip_has_a_reason(overlay, tmp_path):
    out = _checkov(_render(overlay), tmp_path)
    results = _results(out)
    failed = [(f["check_id"], f["resource"], f["check_name"]) for f in results["failed_checks"]]
    assert out["summary"]["passed"] > 100 and not failed, failed
    for skip in results.get("skipped_checks", []):
        reason = skip.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 20, (skip["check_id"], skip["resource"], reason)
    skipped = {(f["check_id"], f["resource"].split(".")[-1]) for f in results.get("skipped_checks", [])}
    assert skipped <= {("CKV_K8S_35", "forge-mlflow"), ("CKV_K8S_40", "forge-mlflow"),
                       ("CKV_K8S_40", "forge-retrain")}, skipped


def test_checkov_fails_a_loosened_deployment(tmp_path):
    loose = copy.deepcopy(_render("overlays/prod"))
    mlflow = next(d for d in loose if d["kind"] == "Deployment" and d["metadata"]["name"] == "forge-mlflow")
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"privileged": True}
    container.pop("resources")
    failed = {f["check_id"] for f in _results(_checkov(loose, tmp_path))["failed_checks"]}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_11", "CKV_K8S_13"} <= failed, failed
