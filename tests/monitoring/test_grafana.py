"""Grafana provisioning that works in a user's Grafana (not installable here, so checked as files): datasource by
UID, Forge's folder, no path that exists only on a Ray head, and panels filtered by namespace and Serve app.
tests/monitoring/test_prometheus.py runs every panel's query against a real Prometheus scrape."""

import json
import re

import pytest
import yaml

from tests.conftest import ROOT

GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
FILTER = re.compile(r'\bray_[a-zA-Z0-9_]+\{namespace=~"\$namespace",application=~"\$application"')


def _datasource_uids() -> set[str]:
    out = set()
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.yaml"):
        out |= {d["uid"] for d in yaml.safe_load(path.read_text())["datasources"]}
    return out


def test_provisioning_has_no_head_node_path_and_names_the_folder():
    for path in (GRAFANA / "provisioning").rglob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        for provider in doc.get("providers", []):
            assert provider["folder"] == "Forge", provider
            assert not provider["options"]["path"].startswith("/tmp"), (path, provider)
            assert "session_latest" not in provider["options"]["path"], (path, provider)
    configmap = yaml.safe_load((ROOT / "kuberay" / "base" / "grafana-dashboards.yaml").read_text())
    assert configmap["metadata"]["annotations"]["grafana_folder"] == "Forge"
    assert set(configmap["data"]) == {p.name for p in DASHBOARDS}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_select_the_datasource_by_uid_and_filter_by_namespace_and_app(path):
    dash = json.loads(path.read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] in _datasource_uids()
    for name in ("namespace", "application"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*", variables[name]
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            # every metric in the query carries both filters: dev and prod, or two apps, never sum together
            assert len(FILTER.findall(expr)) == len(re.findall(r"\bray_[a-zA-Z0-9_]+", expr)), (panel["title"], expr)
