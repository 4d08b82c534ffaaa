"""An app deployed before any champion exists (a RayService applied before the first training) comes up, answers
503 while it waits, and serves once a champion is registered: no redeploy, rows still checked by the schema."""

import time

import httpx
import mlflow
import pandas as pd
import pytest

from forge.registry.client import Registry
from forge.training import tracking
from tests.serving.test_app import _rows

pytestmark = pytest.mark.integration


def _until(fn, timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = fn()
        if out:
            return out
        time.sleep(0.5)
    return fn()


def test_an_app_without_a_champion_waits_then_serves(served, auth_headers):
    from ray import serve

    from forge.serving.app import build_app

    cfg, url = served
    later = cfg.model_copy(deep=True)
    later.name = "churn-later"  # a model name nothing has registered yet
    later.serving.autoscaling.min_replicas = later.serving.autoscaling.max_replicas = 1
    base, h = f"{url}/later", auth_headers()
    serve.run(build_app(later), name="churn-later", route_prefix="/later", blocking=False)
    try:
        waiting = _until(lambda: (r := httpx.get(f"{base}/readyz")).status_code == 503 and r, 90)
        assert waiting and waiting.json() == {"status": "waiting_for_model", "version": None}, waiting.json()
        r = httpx.post(f"{base}/v1/predict", json={"instances": _rows(cfg, 2)}, headers=h)
        assert r.status_code == 503 and r.headers["retry-after"] == "1", (r.status_code, r.text)
        assert r.json()["detail"]["status"] == "waiting_for_model"

        model = Registry.of(cfg).load("champion")  # the session's champion, registered under the new name
        registry = Registry.of(later)
        with mlflow.start_run(experiment_id=tracking.setup(later), run_name="first-champion"):
            version = registry.register(model, pd.DataFrame(_rows(cfg, 3)), tags={})
        registry.promote(version)

        assert _until(lambda: httpx.get(f"{base}/readyz").status_code == 200), httpx.get(f"{base}/readyz").text
        r = httpx.post(f"{base}/v1/predict", json={"instances": _rows(cfg, 2)}, headers=h)
        assert r.status_code == 200 and r.json()["model"]["version"] == version, r.text
        # the schema arrived with the champion: a wrong type is still a 422 naming the row and the field
        bad = _rows(cfg, 2)
        bad[1]["tenure_months"] = "ten"
        r = httpx.post(f"{base}/v1/predict", json={"instances": bad}, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "instances", 1, "tenure_months"], r.text
        r = httpx.post(f"{base}/v1/predict", json={"instances": [{**_rows(cfg, 1)[0], "nope": 1}]}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "extra_forbidden", r.text
    finally:
        serve.delete("churn-later")
