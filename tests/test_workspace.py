"""forge/storage.py + workspace.py: every piece of state on an object store (a real moto S3 server)."""

import os

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from forge.config import ForgeConfig
from forge.storage import Location, StorageError
from forge.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bucket(s3_server):
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fs = pafs.S3FileSystem(endpoint_override=s3_server, scheme="http", access_key="test", secret_key="test",
                           region="us-east-1", allow_bucket_creation=True)
    fs.create_dir("forge-ws")
    yield f"http://{s3_server}", fs
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _cfg(tmp_path, endpoint: str, prefix: str, **extra) -> ForgeConfig:
    raw = {"name": "churn", "workspace": f"s3://forge-ws/{prefix}", "object_store": {"endpoint_url": endpoint},
           "data": {"source": "data/churn.csv", "target": "churned", "timestamp": "event_time",
                    "entity": "customer_id"}, **extra}
    cfg = ForgeConfig.model_validate(raw)
    cfg.config_path = tmp_path / "forge.yaml"
    return cfg


def test_location_reads_writes_and_lists_on_s3(bucket, tmp_path):
    endpoint, fs = bucket
    root = Workspace.from_config(_cfg(tmp_path, endpoint, "unit")).root
    assert root.uri == "s3://forge-ws/unit" and not root.is_local
    (root / "a" / "x.json").write_text('{"k": 1}')
    (root / "a" / "t.parquet").write_table(pa.table({"v": [1, 2]}))
    assert (root / "a" / "x.json").read_text() == '{"k": 1}'
    assert [p.name for p in (root / "a").glob("*.parquet")] == ["t.parquet"]
    assert (root / "a" / "t.parquet").read_table().column("v").to_pylist() == [1, 2]
    assert fs.get_file_info("forge-ws/unit/a/x.json").type == pafs.FileType.File  # really in the bucket
    assert not (tmp_path / ".forge").exists()


def test_bad_locations_name_the_setting_and_the_endpoint(bucket, tmp_path):
    endpoint, _ = bucket
    with pytest.raises(StorageError, match="workspace: unknown URI scheme 'ftp'"):
        Location.of("ftp://host/x")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        Location.of("s3://no-such-bucket/ws", endpoint).check("workspace")
    with pytest.raises(StorageError, match=r"workspace: cannot reach s3://forge-ws/ws \(endpoint http://127.0.0.1:9\)"):
        Location.of("s3://forge-ws/ws", "http://127.0.0.1:9").check("workspace")
    cfg = _cfg(tmp_path, endpoint, "x")
    with pytest.raises(ValueError, match="tracking_uri: a workspace on s3://forge-ws/x needs an MLflow server"):
        _ = Workspace.from_config(cfg).tracking_uri


def test_prediction_log_parts_go_to_s3_and_the_write_ahead_log_stays_local(bucket, tmp_path):
    from forge.monitoring.prediction_log import PredictionLogger, read_log, recover

    endpoint, fs = bucket
    ws = Workspace.from_config(_cfg(tmp_path, endpoint, "log"))
    folder, wal = ws.predictions("churn"), tmp_path / "wal"
    log = PredictionLogger(folder, flush_rows=10_000, flush_interval_s=60, wal_dir=wal)
    log.log([{"request_id": f"r{i}", "timestamp": pd.Timestamp("2026-01-01"), "prediction": i} for i in range(5)])
    assert list(wal.glob("wal-*.jsonl"))  # the write-ahead segment is on this node's disk
    assert log.flush() == 5
    log.log([{"request_id": "late", "timestamp": pd.Timestamp("2026-01-02"), "prediction": 9}])
    log._wal[0].close()  # as if the process died with one record not yet flushed
    log._closed = True
    assert recover(wal, folder) == 1  # a crashed writer's segment is recovered into the bucket
    got = read_log(folder)
    assert got["request_id"].tolist() == ["r0", "r1", "r2", "r3", "r4", "late"]
    parts = fs.get_file_info(pafs.FileSelector("forge-ws/log/predictions/churn"))
    assert len([p for p in parts if p.base_name.startswith("part-")]) == 2


def test_the_pipeline_keeps_every_artifact_in_the_bucket(ray_session, bucket, tmp_path):
    from forge.data import synthetic
    from forge.pipelines.pipeline import run

    endpoint, fs = bucket
    (tmp_path / "data").mkdir()
    synthetic.generate(600, seed=5).to_csv(tmp_path / "data" / "churn.csv", index=False)
    # One cheap trial: the MLP's Train checkpoints on S3 are proven in cluster mode (tests/deploy/test_cluster_mode)
    cfg = _cfg(tmp_path, endpoint, "pipe", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
               training={"num_samples": 1, "models": ["logistic_regression"]})
    out = run(cfg)
    v = out["data_version"]
    listing = {i.path for i in fs.get_file_info(pafs.FileSelector("forge-ws/pipe", recursive=True))}
    for key in (f"datasets/churn/{v}/data.parquet", f"datasets/churn/{v}/manifest.json", "datasets/churn/LATEST",
                f"quarantine/churn/{v}/quarantine.parquet", f"reports/validation-churn-{v}.json",
                f"reports/evaluation-churn-{out['run_id']}.json", f"datasets/churn/{v}/stats/feature_stats.json",
                "features/churn/meta.json"):
        assert f"forge-ws/pipe/{key}" in listing, key
    assert any(p.startswith("forge-ws/pipe/tune/") for p in listing), "no Tune experiment in the bucket"
    assert any("/mlartifacts/" in p for p in listing)
    assert not (tmp_path / ".forge").exists()  # nothing beside the config


def test_commands_fail_at_once_naming_the_setting_and_the_endpoint(bucket, tmp_path):
    from tests.conftest import cli

    endpoint, _ = bucket
    base = {"name": "t", "data": {"source": "d.csv", "target": "y"}, "object_store": {"endpoint_url": endpoint}}
    import yaml

    for extra, code, words in (
        ({"workspace": "s3://no-such-bucket/ws", "tracking_uri": "http://127.0.0.1:9"}, 2,
         ["workspace: bucket 'no-such-bucket' does not exist"]),
        ({"workspace": "ftp://host/ws"}, 2, ["workspace: unknown URI scheme 'ftp'"]),
        ({"workspace": "s3://forge-ws/ok", "tracking_uri": "http://127.0.0.1:9"}, 1,
         ["tracking_uri: cannot reach the MLflow server at http://127.0.0.1:9"]),
    ):
        (tmp_path / "forge.yaml").write_text(yaml.safe_dump({**base, **extra}))
        r = cli("validate", "-c", str(tmp_path / "forge.yaml"))
        assert r.returncode == code, r.stderr
        for w in words:
            assert w in r.stderr.replace("\n", " "), r.stderr
    assert not (tmp_path / ".forge").exists()


def test_a_custom_prediction_log_path_is_where_writer_and_readers_look(tmp_path):
    from forge.config import ForgeConfig

    cfg = ForgeConfig.model_validate({"name": "churn", "workspace": str(tmp_path / "ws"),
                                      "data": {"source": "d.csv", "target": "y"},
                                      "monitoring": {"prediction_log": {"path": str(tmp_path / "elsewhere")}}})
    ws = Workspace.from_config(cfg)
    assert ws.prediction_log(cfg)[0].path == ws.prediction_folder(cfg).path == str(tmp_path / "elsewhere")
    import forge.monitoring.ab
    import forge.monitoring.labels
    import forge.monitoring.monitor
    import forge.pipelines.retrain

    for module in (forge.monitoring.ab, forge.monitoring.labels, forge.monitoring.monitor, forge.pipelines.retrain):
        source = open(module.__file__).read()  # every reader: no other way to the log's folder
        assert ".predictions(cfg.name)" not in source, module.__name__
