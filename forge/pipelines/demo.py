"""The demos behind `make demo` and `make demo-loop`, on the local embedded default."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import httpx
import pandas as pd

from forge.config import ForgeConfig, load_config
from forge.data import synthetic


def ensure_data(cfg: ForgeConfig, rows: int) -> Path:
    """Generate the example CSV (with a few broken rows, to show the quarantine) unless it exists."""
    path = Path(cfg.resolve(cfg.data.source))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic.generate(rows, seed=7).to_csv(path, index=False)
        with path.open("a") as f:
            f.write("17,2026-03-01 10:00:00,lots,55.0,12,1,40,north,basic,0.1,0\n")  # unparseable number
            f.write("18,2026-03-01 10:00:00,12.5,55.0,12,1,40,atlantis,basic,0.1,0\n")  # unknown category
            f.write("19,2026-03-01 10:00:00,12.5\n")  # malformed line
    return path


def _serve(cfg: ForgeConfig, say) -> str:
    from forge.serving.deploy import deploy_app

    url = deploy_app(cfg)
    from forge.serving.app import docs_enabled

    say(f"serving at {url}" + (f"  (OpenAPI docs: {url}/docs)" if docs_enabled(cfg) else ""))
    return url


def _token(cfg: ForgeConfig, scopes: list[str]) -> dict:
    from forge.serving.auth import create_token, settings_for

    return {"Authorization": f"Bearer {create_token(settings_for(cfg), 'demo', scopes)}"}


def _load(config: str) -> ForgeConfig:
    """The demo's project in dev mode: with no FORGE_JWT_SECRET set, the app and `forge token create --dev` share
    the workspace's local development secret (`make up` then serves with the same one)."""
    from forge.pipelines.stack import dev_config

    return dev_config(load_config(config))


def _rows(df: pd.DataFrame, inputs: list[str]) -> list[dict]:
    return json.loads(df[inputs].to_json(orient="records"))


def quickstart(config: str, rows: int = 4000, say=print) -> dict:
    from ray import serve

    from forge._runtime import init_ray
    from forge.pipelines.pipeline import run

    cfg = _load(config)
    path = ensure_data(cfg, rows)
    say(f"data: {path}")
    init_ray()
    result = run(cfg, say=say)
    url = _serve(cfg, say)
    auth = _token(cfg, ["predict"])
    models = httpx.get(f"{url}/v1/models", headers=auth, timeout=30).json()["models"][0]
    inputs = list(models["input_schema"])
    sample = _rows(synthetic.generate(3, seed=99), inputs)
    calls = [
        ("3 rows, valid token", {"instances": sample}, auth),
        ("no token", {"instances": sample[:1]}, {}),
        ("wrong type", {"instances": [{**sample[0], inputs[0]: "not a number"}]}, auth),
    ]
    answers = []
    for title, body, headers in calls:
        r = httpx.post(f"{url}/v1/predict", json=body, headers=headers, timeout=30)
        say(f"POST /v1/predict ({title}) -> {r.status_code} {r.text[:200]}")
        answers.append(r.status_code)
    say(f"GET /readyz -> {httpx.get(f'{url}/readyz', timeout=10).status_code}; model v{models['version']} "
        f"data {result['data_version']}")
    serve.delete(cfg.name)
    say("app stopped gracefully; prediction log flushed to the workspace")
    return {**result, "url": url, "sample_status_codes": answers}


def _send(url: str, auth: dict, admin: dict, df: pd.DataFrame, inputs: list[str], target: str) -> None:
    """Rows to /v1/predict in requests of 20, each answered request's true labels to /v1/labels."""
    for start in range(0, len(df), 20):
        chunk = df.iloc[start : start + 20]
        r = httpx.post(f"{url}/v1/predict", json={"instances": _rows(chunk, inputs)}, headers=auth, timeout=30)
        r.raise_for_status()
        rid = r.json()["request_id"]  # the server's id: labels join on it
        labels = [{"request_id": rid, "row": i, "label": int(y)} for i, y in enumerate(chunk[target])]
        httpx.post(f"{url}/v1/labels", json={"labels": labels}, headers=admin, timeout=30).raise_for_status()


def _await_swap(url: str, auth: dict, before: str, out, say) -> str:
    """The version the live app serves once a promoted retraining has reached it (or the old one)."""
    if not out.promoted:
        say(f"gate refused the challenger: v{before} keeps serving")
        return before
    swapped_to, deadline = before, time.time() + 60
    while time.time() < deadline and swapped_to != out.model_version:
        time.sleep(1)
        swapped_to = httpx.get(f"{url}/v1/models", headers=auth, timeout=30).json()["models"][0]["version"]
    say(f"live app now serves v{swapped_to} (was v{before}), no restart")
    return swapped_to


def loop(config: str, say=print, keep_serving: bool = False) -> dict:
    """Serve the champion, shift traffic, see drift, retrain through the gate, see the live swap.

    Args:
        keep_serving: leave the app running afterwards (tests call it again).
    """
    from ray import serve

    from forge._runtime import init_ray
    from forge.monitoring.labels import live_performance
    from forge.monitoring.monitor import run_drift
    from forge.pipelines.pipeline import run
    from forge.pipelines.retrain import retrain
    from forge.registry.client import Registry

    cfg = _load(config)
    cfg.serving.model_poll_s = 2
    ensure_data(cfg, 4000)
    init_ray()
    if Registry.of(cfg).version() is None:
        say("no champion yet: running the pipeline first")
        run(cfg, say=say)
    url = _serve(cfg, say)
    auth, admin = _token(cfg, ["predict"]), _token(cfg, ["admin"])
    before = httpx.get(f"{url}/v1/models", headers=auth, timeout=30).json()["models"][0]
    inputs = list(before["input_schema"])
    say(f"champion v{before['version']} is live")

    def traffic(df: pd.DataFrame, label: str) -> None:
        _send(url, auth, admin, df, inputs, cfg.data.target)
        say(f"traffic: sent {len(df)} {label} rows with their delayed labels")

    traffic(synthetic.generate(400, seed=11), "normal")
    time.sleep(3)  # let the replicas flush their prediction logs
    base = run_drift(cfg, None, multivariate=False, last=400)
    say(f"drift before the shift: share {base.drift_share:.2f} (dataset drift: {base.dataset_drift})")
    traffic(synthetic.generate(1200, seed=12, shift=1.5, concept_shift=1.0), "SHIFTED")
    time.sleep(3)
    html_path = Path(cfg.resolve(".forge")) / "reports" / "drift-demo-loop.html"
    shifted = run_drift(cfg, None, html_out=str(html_path), last=1200)
    say(f"drift after the shift: share {shifted.drift_share:.2f} (dataset drift: {shifted.dataset_drift}); "
        f"report: {html_path}")
    perf = live_performance(cfg)
    live = "n/a" if perf.live_value is None else f"{perf.live_value:.4f}"
    say(f"delayed labels: live {perf.metric} {live} over the last {perf.rows} labelled predictions "
        f"vs {perf.test_value:.4f} at test time")
    out = retrain(cfg, if_drift=True, if_decay=True, say=say)
    swapped_to = _await_swap(url, auth, before["version"], out, say)
    if not keep_serving:
        serve.delete(cfg.name)
    return {"drift_before": base.drift_share, "drift_after": shifted.drift_share, "retrain": out.to_dict(),
            "served_before": before["version"], "served_after": swapped_to, "drift_report": str(html_path),
            "live_metric": asdict(perf), "auth_header": auth["Authorization"],
            "sample": _rows(synthetic.generate(2, seed=5), inputs)}
