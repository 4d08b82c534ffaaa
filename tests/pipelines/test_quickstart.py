"""`forge demo quickstart` (what `make demo` runs) end to end in its own process: it answers, and the terminal
shows Forge's own lines only (Ray, Tune, Optuna and MLflow go to the workspace's log file)."""

import json
import shutil

import pytest

from tests.conftest import ROOT, free_port, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_quickstart_answers_and_keeps_the_terminal_quiet(tmp_path):
    shutil.copy(ROOT / "examples" / "churn" / "forge.yaml", tmp_path / "forge.yaml")
    # Its own embedded cluster, with HAProxy's stats and metrics ports of its own: a session app holds 8404 and
    # 9101 when one is up, and a second HAProxy on them crashed at start.
    env = {"FORGE_TRAINING__NUM_SAMPLES": "2", "FORGE_TRAINING__MODELS": "[logistic_regression]",
           "FORGE_SERVING__PORT": str(free_port()), "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
           "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port())}
    r = run_cli("demo", "quickstart", "-c", str(tmp_path / "forge.yaml"), "--rows", "1500", "--json", env=env,
                timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["sample_status_codes"] == [200, 401, 422] and out["promoted"]
    noise = [line for line in r.stdout.strip().splitlines()[:-1] + r.stderr.splitlines()
             if line.strip() and not line.startswith("forge") and not line.startswith("  ")]
    assert not noise, "\n".join(noise[:20])  # report lines of validation are indented under forge's own
    assert "Successfully registered model" not in r.stderr and "UserWarning" not in r.stderr
