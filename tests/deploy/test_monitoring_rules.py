"""Alert rules: the PrometheusRule's groups pass `promtool check rules` and a unit test per alert."""

import subprocess

import yaml

from tests.conftest import ROOT, require_binary

RULES = ROOT / "kuberay" / "base" / "prometheus-rules.yaml"


def _extract(tmp_path):
    spec = yaml.safe_load(RULES.read_text())["spec"]
    path = tmp_path / "forge-rules.yml"
    path.write_text(yaml.safe_dump({"groups": spec["groups"]}))
    return path


def test_promtool_check_rules(tmp_path):
    promtool = require_binary("promtool")
    r = subprocess.run([promtool, "check", "rules", str(_extract(tmp_path))], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 rules found" in r.stdout


def test_promtool_unit_tests_cover_every_alert(tmp_path):
    promtool = require_binary("promtool")
    rules = _extract(tmp_path)
    text = (ROOT / "tests" / "deploy" / "forge_rules_test.yml").read_text().replace("RULES", str(rules))
    alerts = {r["alert"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]}
    tested = {t["alertname"] for case in yaml.safe_load(text)["tests"] for t in case["alert_rule_test"]}
    assert alerts == tested
    (tmp_path / "test.yml").write_text(text)
    r = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
