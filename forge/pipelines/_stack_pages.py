"""What a person opens once `forge up` is done: a page that works for each part, or the command that does its job.

Each is looked up on the running process, not assumed: Prometheus 2.x as Debian packages it answers its alerts
and targets pages only under /classic (its new UI is not in the package), 3.x at /alerts and /targets; Debian's
Alertmanager has no web UI at all (its / says so), so its API and `amtool` stand in; the Ray dashboard asks for
Ray's token in the browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forge.config import ForgeConfig

NO_AM_UI = "does not include a web"


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _prometheus(url: str) -> dict[str, str]:
    ui = "" if _answers(f"{url}/alerts") else "/classic"
    return {"prometheus_alerts": f"{url}{ui}/alerts", "prometheus_targets": f"{url}{ui}/targets"}


def _alertmanager(url: str) -> tuple[str, bool]:
    """(the page to open, whether it is a web UI)."""
    import httpx

    try:
        has_ui = NO_AM_UI not in httpx.get(f"{url}/", timeout=5).text
    except httpx.HTTPError:
        has_ui = False
    return (f"{url}/#/alerts", True) if has_ui else (f"{url}/api/v2/alerts", False)


def pages(cfg: ForgeConfig, urls: dict[str, str], app: str | None, grafana_url: str | None,
          provisioning: Path) -> dict:
    """{"pages": {name: url}, "commands": {what: command}, "grafana": {...}} for the running stack."""
    config = str(cfg.config_path) if cfg.config_path else "forge.yaml"
    am_page, am_ui = _alertmanager(urls["alertmanager"])
    found = {"ray_dashboard": urls["ray_dashboard"], "mlflow": urls["mlflow"], **_prometheus(urls["prometheus"]),
             "alertmanager": am_page, "pushgateway": urls["pushgateway"]}
    commands = {"ray_token": "ray get-auth-token"}
    if not am_ui:
        commands["alerts"] = f"amtool --alertmanager.url={urls['alertmanager']} alert query"
    if app:
        found["app_docs"] = f"{app}/docs"
        commands["app_token"] = f"forge token create --dev -c {config}"
    grafana = {"url": grafana_url, "provisioning": str(provisioning),
               "note": "Forge starts no Grafana; point yours at this provisioning (datasource: this Prometheus)"}
    return {"pages": found, "commands": commands, "grafana": grafana}


URL_KEYS = ("ray_dashboard", "mlflow", "prometheus", "alertmanager", "pushgateway", "app")


@dataclass
class StackUp:
    """What `forge up` started (or found running): each part's URL, the pages to open, the commands that stand in
    where a part has no page, and Grafana's provisioning."""

    urls: dict
    pages: dict
    commands: dict
    grafana: dict

    def to_dict(self) -> dict:
        """The `forge up --json` object: DESIGN's URL keys, then pages, commands and grafana."""
        return {**self.urls, "pages": self.pages, "commands": self.commands, "grafana": self.grafana}

    @classmethod
    def from_dict(cls, d: dict) -> StackUp:
        return cls({k: d.get(k) for k in URL_KEYS}, d["pages"], d["commands"], d["grafana"])

    def lines(self, width: int = 80) -> list[str]:
        return table(self.to_dict(), width)


def table(out: dict, width: int = 80) -> list[str]:
    """The lines `forge up` prints on stdout: what to open, one part a row, within `width` columns."""
    p, c = out["pages"], out["commands"]
    rows: list[tuple[str, list[str]]] = [
        ("Ray", [p["ray_dashboard"], f"asks for Ray's token: {c['ray_token']}"]),
        ("MLflow", [p["mlflow"]]),
        ("Prometheus", [p["prometheus_alerts"], p["prometheus_targets"]]),
        ("Alertmanager", [p["alertmanager"]] + ([c["alerts"]] if "alerts" in c else [])),
        ("Pushgateway", [p["pushgateway"]]),
        ("app", [p["app_docs"], f"a token: {c['app_token']}"] if "app_docs" in p
         else ["none: no champion yet (forge run, then forge serve --detach)"]),
        ("Grafana", [out["grafana"]["url"] or "not started: provisioning for yours in",
                     out["grafana"]["provisioning"]]),
    ]
    lines = ["forge up: the local stack (forge down stops it)"]
    for name, items in rows:
        for i, item in enumerate(items):
            lines.extend(_wrap(f"  {name if i == 0 else '':<13}", item, width))
    return lines


def _wrap(head: str, text: str, width: int) -> list[str]:
    """`head` then `text`, continued on indented lines when it is wider than `width` (a long path is cut)."""
    import textwrap

    parts = textwrap.wrap(text, max(width - len(head), 20), break_on_hyphens=False) or [""]
    return [f"{head if i == 0 else ' ' * len(head)}{part}" for i, part in enumerate(parts)]
