"""What `forge up`'s monitoring processes read, written into the stack folder.

Prometheus: Ray's service-discovery file and the Pushgateway, Forge's alert rules, alerts to Alertmanager.
Alertmanager: Forge's routing (alertmanager/alertmanager.yml), its `forge` receiver pointed at the app's
/v1/alerts with an admin token. Grafana: provisioning for a Grafana of your own (none is started: Grafana is not
a Debian package), its datasource this stack's Prometheus and its dashboards Forge's and Ray's.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from forge.config import ForgeConfig

ROOT = Path(__file__).resolve().parents[2]


def prometheus_config(cfg: ForgeConfig, folder: Path, temp: str) -> None:
    s = cfg.monitoring.stack
    groups = yaml.safe_load((ROOT / "kuberay" / "base" / "prometheus-rules.yaml").read_text())["spec"]["groups"]
    (folder / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "10s", "evaluation_interval": "10s"},
        "rule_files": [str(folder / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{s.alertmanager_port}"]}]}]},
        "scrape_configs": [
            {"job_name": "ray", "file_sd_configs": [
                {"files": [f"{temp}/session_latest/prom_metrics_service_discovery.json",
                           f"{temp}/prom_metrics_service_discovery.json"]}]},
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [f"127.0.0.1:{s.pushgateway_port}"]}]}]}))


def alertmanager_config(cfg: ForgeConfig, folder: Path, admin_token: str | None) -> None:
    """Forge's routing; without an admin token (auth misconfigured) the `forge` receiver is left out, since
    Alertmanager could not authenticate to /v1/alerts."""
    am = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    if admin_token is not None:
        token = folder / "forge-admin.token"
        token.write_text(admin_token)
        token.chmod(0o600)
        for receiver in am["receivers"]:
            for hook in receiver.get("webhook_configs", []) if receiver["name"] == "forge" else []:
                hook["url"] = f"http://127.0.0.1:{cfg.serving.port}/v1/alerts"
    else:
        am["receivers"] = [r for r in am["receivers"] if r["name"] != "forge"]
        am["route"]["routes"] = [r for r in am["route"]["routes"] if r["receiver"] != "forge"]
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(am))


def grafana_provisioning(folder: Path, prometheus_url: str, temp: str) -> Path:
    """A provisioning folder for your own Grafana (`grafana-server cfg:paths.provisioning=<it>`): the datasource
    Forge's dashboards select (uid forge-prometheus) on this stack's Prometheus; Forge's dashboards and the ones
    Ray writes into its session folder, each in a folder of its own."""
    out = folder / "grafana"
    (out / "datasources").mkdir(parents=True, exist_ok=True)
    (out / "dashboards").mkdir(parents=True, exist_ok=True)
    source = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    source["datasources"][0]["url"] = prometheus_url
    (out / "datasources" / "forge.yaml").write_text(yaml.safe_dump(source, sort_keys=False))
    providers = [
        {"name": "forge", "folder": "Forge", "folderUid": "forge", "type": "file",
         "options": {"path": str(ROOT / "grafana" / "dashboards")}},
        {"name": "ray", "folder": "Ray", "folderUid": "ray", "type": "file",
         "options": {"path": f"{temp}/session_latest/metrics/grafana/dashboards"}},
    ]
    (out / "dashboards" / "forge.yaml").write_text(yaml.safe_dump({"apiVersion": 1, "providers": providers},
                                                                   sort_keys=False))
    return out
