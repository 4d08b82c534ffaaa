"""forge/monitoring/labels.py: delayed ground truth joined on request id, and the live model's real metric."""

import json
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from forge.data import synthetic
from forge.monitoring.labels import LivePerformance
from tests.conftest import cli
from tests.contract import cli_json

COLS = ["usage_hours", "monthly_spend", "tenure_months", "support_tickets", "age", "region", "plan", "discount"]


def test_decay_rule_follows_metric_direction():
    def perf(live, test, mode):
        return LivePerformance("1", "m", mode, test, live, 100, {})

    assert perf(0.70, 0.80, "max").decayed(0.05)
    assert not perf(0.78, 0.80, "max").decayed(0.05)
    assert perf(3.0, 2.0, "min").decayed(0.5)  # rmse went up
    assert not perf(None, 0.8, "max").decayed(0.05)  # too few labels


@pytest.mark.integration
def test_label_file_gives_the_realised_metric(served, auth_headers, tmp_path):
    cfg, url = served
    h = auth_headers()
    df = synthetic.generate(90, seed=77)
    labels, scores = [], []
    for start in range(0, len(df), 30):
        chunk = df.iloc[start : start + 30]
        r = httpx.post(f"{url}/v1/predict", json={"instances": json.loads(chunk[COLS].to_json(orient="records"))},
                       headers=h, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        scores += [p[1] for p in body["probabilities"]]
        labels += [{"request_id": body["request_id"], "row": i, "label": int(y)}
                   for i, y in enumerate(chunk["churned"])]
    path = tmp_path / "labels.csv"
    pd.DataFrame(labels).to_csv(path, index=False)
    added = cli("labels", "add", str(path), "-c", str(cfg.config_path), "--json")
    assert added.returncode == 0, added.stderr
    assert cli_json(added, "labels add")["labels"] == 90

    time.sleep(2)  # the replicas flush their prediction logs every 0.5 s
    rep = cli("labels", "report", "--window", "90", "-c", str(cfg.config_path), "--json")
    assert rep.returncode == 0, rep.stderr
    out = cli_json(rep, "labels report")
    expected = roc_auc_score([x["label"] for x in labels], scores)
    assert out["metric"] == "roc_auc" and out["rows"] == 90
    assert np.isclose(out["live_value"], expected, atol=1e-9)  # the same AUC sklearn gives on what was served
    # decayed: the live AUC fell more than retraining.performance_drop below the champion's test AUC
    assert out["test_value"] is not None
    assert out["decayed"] is (out["test_value"] - expected > cfg.retraining.performance_drop), out

    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": ["x"], "y": [1]}).to_csv(bad, index=False)
    res = cli("labels", "add", str(bad), "-c", str(cfg.config_path))
    assert res.returncode == 2 and "request_id" in res.stderr
