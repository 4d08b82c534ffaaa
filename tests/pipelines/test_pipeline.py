"""forge/pipelines/pipeline.py: the whole pipeline, MLflow tracking, registry gate, lineage, fresh-process load."""

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from forge.config import load_config
from forge.pipelines.pipeline import run
from forge.registry.client import Registry
from forge.registry.registry import alias_version, gate, lineage
from forge.training import tracking
from forge.workspace import tracking_uri
from tests.conftest import ROOT, cli, wait_ready, write_project
from tests.contract import cli_json

pytestmark = pytest.mark.integration


def test_run_result_contract(trained_project):
    cfg, out = trained_project
    assert {"data_version", "rows_in", "rows_valid", "rows_quarantined", "report_path", "quarantine_path",
            "run_id", "model_name", "model_version", "metric", "promoted"} <= set(out)
    assert out["promoted"] and out["metric"]["name"] == "roc_auc" and out["metric"]["value"] > 0.65
    assert out["trials"] == cfg.training.num_samples and out["failed_trials"] == 0


def test_mlflow_parent_child_runs_and_dataset_input(trained_project):
    cfg, out = trained_project
    tracking.setup(cfg)
    client = MlflowClient()
    parent = client.get_run(out["run_id"])
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{out['run_id']}'")
    assert len(children) == cfg.training.num_samples
    assert all("val_metric" in c.data.metrics for c in children)
    digests = {d.dataset.digest for d in parent.inputs.dataset_inputs}
    assert digests == {out["data_version"]}
    arts = {a.path for a in client.list_artifacts(out["run_id"])}
    assert {"validation", "features", "evaluation", "tune"} <= arts
    assert parent.data.tags.get("forge.data_version") == out["data_version"]
    for m in ("test_accuracy", "test_f1", "test_roc_auc", "test_log_loss"):
        assert m in parent.data.metrics


def test_tune_report_is_readable_afterwards(trained_project):
    from ray.tune import ExperimentAnalysis

    cfg, out = trained_project
    run_ = tracking.client(cfg).get_run(out["run_id"])
    analysis = ExperimentAnalysis(run_.data.tags["forge.tune_experiment"])
    df = analysis.dataframe()
    assert len(df) == cfg.training.num_samples and "val_metric" in df


def test_trials_run_in_parallel(trained_project, tmp_path):
    from forge.data.versioning import get_version
    from forge.pipelines.pipeline import schema_of
    from forge.training.trainer import prepare, search
    from forge.workspace import Workspace

    cfg, _ = trained_project
    c = cfg.model_copy(deep=True)
    c.config_path = cfg.config_path
    # two trials long enough that, run at once, they must overlap (the pipeline's own last a fraction of a
    # second, less than Tune's one-second timestamps tell apart), one CPU each of the machine's two
    c.training.models = {"random_forest": {"n_estimators": 400, "max_depth": 16, "min_samples_leaf": 1}}
    c.training.num_samples, c.training.max_concurrent = 2, 2
    dv = get_version(Workspace.from_config(c), c.name)
    grid = search(c, prepare(c, pd.read_parquet(dv.snapshot), schema_of(dv)), tmp_path)
    df = grid.get_dataframe()
    end = df["timestamp"].to_numpy(dtype=float)
    start = end - df["time_total_s"].to_numpy()
    overlaps = sum(1 for i in range(len(df)) for j in range(i + 1, len(df)) if start[i] < end[j] and start[j] < end[i])
    assert overlaps >= 1, df[["timestamp", "time_total_s", "pid"]]
    assert df["pid"].nunique() >= 2  # two trial actors


def test_registered_model_predicts_raw_rows_in_fresh_process(trained_project, tmp_path):
    cfg, out = trained_project
    rows = pd.read_csv(cfg.resolve(cfg.data.source)).head(5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code = (f"import mlflow,pandas as pd; mlflow.set_tracking_uri({tracking_uri(cfg)!r}); "
            f"m=mlflow.pyfunc.load_model('models:/{cfg.name}@champion'); "
            f"print(m.predict(pd.read_csv({str(tmp_path / 'rows.csv')!r})).to_json(double_precision=15))")
    env = {k: v for k, v in os.environ.items() if k != "FORGE_VERIFY_KEY_FILE"}
    # MLflow's own loader verifies the artifact's signature too: with no public key to check it, nothing loads
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=env)
    assert r.returncode != 0 and "no model-signing public key" in r.stderr, r.stderr[-2000:]
    from forge.signing import PUBLIC
    from forge.workspace import Workspace

    env["FORGE_VERIFY_KEY_FILE"] = str(Workspace.from_config(cfg).keys() / PUBLIC)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.DataFrame(json.loads(r.stdout.strip().splitlines()[-1]))
    # MLflow's loader in a process that never saw Forge gives the champion's own answers on the same rows
    pred, proba = Registry.of(cfg).load("champion").predict_raw(rows)
    assert got["prediction"].tolist() == pred.tolist()
    np.testing.assert_allclose(got[["proba_0", "proba_1"]].to_numpy(), proba, rtol=0, atol=1e-12)


def test_gate_promotes_better_and_refuses_worse(trained_project):
    cfg, _ = trained_project
    good = Registry.of(cfg).load("champion")
    df = pd.read_csv(cfg.resolve(cfg.data.source)).dropna(subset=["churned"]).tail(400)

    class Worse:
        classes = good.classes

        def predict_raw(self, frame):
            rng = np.random.default_rng(0)
            p = rng.random(len(frame))
            return (p > 0.5).astype(int), np.c_[1 - p, p]

    assert gate(cfg, good, Worse(), df, "roc_auc", "1").passed
    refused = gate(cfg, Worse(), good, df, "roc_auc", "1")
    assert not refused.passed
    assert "improvement" in refused.reason, refused.reason  # judged against the champion, not the floor


def test_models_cli_show_prints_lineage(trained_project):
    cfg, out = trained_project
    r = cli("models", "show", "champion", "-c", str(cfg.config_path), "--json")
    assert r.returncode == 0, r.stderr
    chain = json.loads(r.stdout.strip().splitlines()[-1])
    assert chain["data"]["version"] == out["data_version"]
    assert chain["data"]["inputs"][0]["digest"] == out["data_version"]
    manifest = json.loads(open(chain["data"]["manifest"]).read())
    assert manifest["source"] == "data/churn.csv" and "validation_report" in manifest
    r = cli("models", "list", "-c", str(cfg.config_path), "--json")
    assert r.returncode == 0, r.stderr
    listed = {str(v["version"]): v for v in json.loads(r.stdout.strip().splitlines()[-1])["versions"]}
    champion = listed[alias_version(tracking.client(cfg), cfg.name, "champion")]
    assert "champion" in champion["aliases"] and champion["data_version"], champion
    mine = listed[str(out["model_version"])]  # the session's run, with its data version and test metric
    assert mine["run_id"] == out["run_id"] and mine["data_version"] == out["data_version"]
    assert mine["metric"] == f"{out['metric']['name']}={out['metric']['value']:.4f}", mine


def test_lineage_function(trained_project):
    cfg, out = trained_project
    chain = lineage(tracking.client(cfg), cfg.name, str(out["model_version"]))
    assert chain["model"]["run_id"] == out["run_id"]


def test_breast_cancer_matches_published_baseline(ray_session, tmp_path):
    """scikit-learn's breast cancer set: published baselines reach ~0.99 ROC AUC; so must we."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame
    data.columns = [c.replace(" ", "_") for c in data.columns]
    data.to_csv(tmp_path / "bc.csv", index=False)
    (tmp_path / "forge.yaml").write_text(
        "name: breast_cancer\ndata:\n  source: bc.csv\n  target: target\n"
        "training:\n  num_samples: 2\n  models: [logistic_regression, hist_gradient_boosting]\n")
    out = run(load_config(tmp_path / "forge.yaml"))
    assert out["metric"]["name"] == "roc_auc" and out["metric"]["value"] >= 0.97


def test_training_against_a_real_mlflow_server(ray_session, tmp_path):
    from tests.conftest import free_port

    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_ready(f"http://127.0.0.1:{port}/health", 90), "mlflow server did not start"
        path = write_project(tmp_path / "p", rows=800, tracking_uri=f"http://127.0.0.1:{port}",
                             training={"num_samples": 1, "models": ["logistic_regression"]})
        out = run(load_config(path))
        server_client = MlflowClient(f"http://127.0.0.1:{port}", registry_uri=f"http://127.0.0.1:{port}")
        assert alias_version(server_client, "churn", "champion") == str(out["model_version"])
        assert server_client.get_run(out["run_id"]).info.status == "FINISHED"
    finally:
        mlflow.set_tracking_uri(None)  # later tests must not inherit the stopped server
        mlflow.set_registry_uri(None)
        server.terminate()
        server.wait(20)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_forge_predict_streams_a_local_file_in_process(trained_project, tmp_path, fmt):
    """A local file and no cluster to join: one Arrow pass in the CLI's own process, rows in = rows out, and
    the same predictions the registered model gives."""
    from forge.data import synthetic

    cfg, _ = trained_project
    frame = synthetic.generate(3000, seed=71).drop(columns=["churned"])
    src = tmp_path / f"in.{fmt}"
    frame.to_csv(src, index=False) if fmt == "csv" else frame.to_parquet(src)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "forge"), "predict", "-c", str(cfg.config_path), "--input",
                        str(src), "--output", str(tmp_path / "out"), "--json"], capture_output=True, text=True,
                       timeout=300, env=env)
    out = cli_json(r, "predict")
    assert r.returncode == 0 and out["engine"] == "arrow" and out["rows"] == out["rows_in"] == 3000, r.stderr[-2000:]
    got = pd.read_parquet(tmp_path / "out")
    model = Registry.of(cfg).load("champion")
    pred, _ = model.predict_raw(pd.read_csv(src) if fmt == "csv" else pd.read_parquet(src))
    assert (got["prediction"].to_numpy() == pred).all() and "score" in got


def test_predict_and_drift_name_a_missing_or_malformed_file_and_exit_2(trained_project, tmp_path):
    """A missing input, a CSV with a short row and a file that is not Parquet: exit 2 naming the file and the
    problem, never the 'unexpected error' traceback (the files are read ahead on a thread; its errors surface
    in the command as its own read's would)."""
    cfg, _ = trained_project
    (tmp_path / "short.csv").write_text("usage_hours,monthly_spend\n1.0,2.0\n3.0\n")
    (tmp_path / "not.parquet").write_bytes(b"PAR1 not parquet at all")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    forge = str(ROOT / ".venv" / "bin" / "forge")
    cases = [(["predict", "--input", str(tmp_path / "nope.csv")], "does not exist"),
             (["predict", "--input", str(tmp_path / "short.csv")], "Expected 2 columns"),
             (["predict", "--input", str(tmp_path / "not.parquet")], "not.parquet"),
             (["drift", "--current", str(tmp_path / "not.parquet")], "magic bytes")]
    for args, says in cases:
        extra = ["--output", str(tmp_path / "out")] if args[0] == "predict" else []
        r = subprocess.run([forge, *args, "-c", str(cfg.config_path), *extra], capture_output=True, text=True,
                           timeout=300, env=env)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr[-1500:])
