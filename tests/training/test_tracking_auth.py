"""MLflow's auth app on, as kuberay/base/mlflow.yaml runs it: Forge's clients pass the credentials MLflow's own
client reads (MLFLOW_TRACKING_USERNAME/PASSWORD), and without them a command stops at once with exit 2 and a
message naming what to set, not a traceback or minutes of retries."""

import secrets

import mlflow
import pytest

from forge.config import load_config
from forge.registry.client import Registry
from forge.training import tracking
from tests.conftest import cli, write_project
from tests.servers import start_mlflow

pytestmark = pytest.mark.integration

USER, PASSWORD = "forge", secrets.token_hex(16)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-auth")
    ini = folder / "basic_auth.ini"
    ini.write_text(f"[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = sqlite:///{folder}/auth.db\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_USERNAME": USER,
           "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD, "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    server = start_mlflow(f"sqlite:///{folder}/mlflow.db", str(folder / "artifacts"), "", env, app_name="basic-auth")
    yield server
    server.stop()


@pytest.fixture
def project(auth_server, tmp_path):
    return write_project(tmp_path, rows=200, tracking_uri=auth_server.url)


@pytest.mark.parametrize("password", [None, "wrong"])
def test_without_the_right_credentials_a_command_exits_2_naming_them(project, password):
    env = {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": password} if password else {}
    for args in (["validate"], ["models", "list"]):  # the preflight check, and a registry call meeting the 401
        r = cli(*args, "-c", str(project), env=env)
        assert r.returncode == 2, (args, r.returncode, r.stderr[-2000:])
        assert "MLFLOW_TRACKING_USERNAME" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_with_credentials_forge_tracks_and_reads_the_registry(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    cfg = load_config(project)
    tracking.check_tracking(cfg)
    with mlflow.start_run(experiment_id=tracking.setup(cfg)) as run:
        mlflow.log_metric("auc", 0.9)
    assert tracking.client(cfg).get_run(run.info.run_id).data.metrics == {"auc": 0.9}
    assert Registry.of(cfg).versions() == []
    r = cli("models", "list", "-c", str(project), "--json")
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_serving_reader_reads_models_and_can_change_none(auth_server, monkeypatch):
    """scripts/mlflow_reader.py, run as the admin, makes the user the Serve pods call MLflow as (forge-mlflow-reader):
    it describes the registered model and reads its experiment, and MLflow refuses it a new version, an alias, a
    tag or a run."""
    import importlib.util

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("mlflow_reader", ROOT / "scripts" / "mlflow_reader.py")
    reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reader)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    reader_password = secrets.token_hex(16)
    granted = reader.grant_read(auth_server.url, "served", "forge-serve", reader_password)
    admin = MlflowClient(auth_server.url, auth_server.url)  # explicit URIs: no default store in the cwd
    run = admin.create_run(granted["experiment_id"])
    admin.log_metric(run.info.run_id, "auc", 0.9)
    version = admin.create_model_version("served", f"runs:/{run.info.run_id}/model", run.info.run_id)
    admin.set_registered_model_alias("served", "champion", version.version)
    assert reader.grant_read(auth_server.url, "served", "forge-serve", "ignored-on-a-rerun") == granted

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "forge-serve")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", reader_password)  # the rerun kept the first password
    serve = MlflowClient(auth_server.url, auth_server.url)
    assert serve.get_model_version_by_alias("served", "champion").version == version.version
    assert serve.get_run(run.info.run_id).data.metrics == {"auc": 0.9}
    refused = [
        lambda: serve.create_model_version("served", f"runs:/{run.info.run_id}/model", run.info.run_id),
        lambda: serve.set_registered_model_alias("served", "champion", "1"),
        lambda: serve.set_registered_model_tag("served", "promoted", "yes"),
        lambda: serve.create_run(granted["experiment_id"]),
        lambda: serve.delete_model_version("served", version.version),
    ]
    # (MLflow lets any user create an experiment or a registered model of its own: that touches none of these.)
    for attempt in refused:
        with pytest.raises(MlflowException, match="PERMISSION_DENIED|Permission denied|403"):
            attempt()
