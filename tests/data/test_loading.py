"""forge/data/loading.py: every format and location, including s3:// against a real S3 server on loopback."""

import sqlite3

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from forge.config import load_config
from forge.data.ingest import validate_dataset
from forge.data.loading import read_dataset

pytestmark = pytest.mark.integration

DF = pd.DataFrame({"x": list(range(40)), "c": ["a", "b", "c", "d"] * 10, "y": [0, 1] * 20})


def _cfg(tmp_path, source: str, extra: str = ""):
    # These files hold bad lines on purpose: more than the default 1% of them.
    (tmp_path / "forge.yaml").write_text(f"name: l\ndata:\n  source: '{source}'\n  target: y\n"
                                         f"  checks: {{min_rows: 2, max_quarantined_fraction: 0.5}}\n{extra}")
    return load_config(tmp_path / "forge.yaml")


@pytest.mark.parametrize("kind", ["csv", "parquet", "json", "folder", "glob", "file_uri"])
def test_formats_and_locations(ray_session, tmp_path, kind):
    if kind == "csv":
        DF.to_csv(tmp_path / "d.csv", index=False)
        src = "d.csv"
    elif kind == "parquet":
        DF.to_parquet(tmp_path / "d.parquet")
        src = "d.parquet"
    elif kind == "json":
        DF.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
        src = "d.jsonl"
    elif kind in ("folder", "glob"):
        (tmp_path / "parts").mkdir()
        DF.iloc[:20].to_parquet(tmp_path / "parts" / "a.parquet")
        DF.iloc[20:].to_parquet(tmp_path / "parts" / "b.parquet")
        src = "parts" if kind == "folder" else "parts/*.parquet"
    else:
        DF.to_csv(tmp_path / "d.csv", index=False)
        src = (tmp_path / "d.csv").as_uri()
    extra = "  format: parquet\n" if kind == "folder" else ""
    res = validate_dataset(_cfg(tmp_path, src, extra))
    assert res.rows_in == 40 and res.rows_valid == 40


def test_sql_source(ray_session, tmp_path):
    db = tmp_path / "d.db"
    with sqlite3.connect(db) as con:
        DF.to_sql("t", con, index=False)
    cfg = _cfg(tmp_path, "sqlite:///d.db", "  query: SELECT x, c, y FROM t WHERE x < 30\n")
    res = validate_dataset(cfg)
    assert res.rows_in == 30 and res.rows_valid == 30


def test_s3_against_real_server(ray_session, tmp_path, s3_server):
    opts = dict(endpoint_override=s3_server, scheme="http", access_key="test", secret_key="test", region="us-east-1")
    fs = pafs.S3FileSystem(**opts, allow_bucket_creation=True)
    fs.create_dir("forge-bucket")
    pq.write_table(pa.Table.from_pandas(DF), "forge-bucket/data/d.parquet", filesystem=fs)
    extra = (f"  storage_options: {{endpoint_override: '{s3_server}', scheme: http, access_key: test, "
             "secret_key: test, region: us-east-1}\n")
    cfg = _cfg(tmp_path, "s3://forge-bucket/data/d.parquet", extra)
    assert read_dataset(cfg).count() == 40
    res = validate_dataset(cfg)
    assert res.rows_valid == 40 and res.dataset.manifest["source"].startswith("s3://")
    # CSV on S3 is read in byte ranges too (random access through the same filesystem).
    with fs.open_output_stream("forge-bucket/data/d.csv") as f:
        f.write(DF.to_csv(index=False).encode() + b"41,a,1,extra\n")
    res = validate_dataset(_cfg(tmp_path, "s3://forge-bucket/data/d.csv", extra))
    assert (res.rows_in, res.rows_valid, res.rows_quarantined) == (41, 40, 1)
    q = pq.read_table(res.quarantine_path).to_pylist()
    assert q[0]["line"] == 42 and q[0]["reason"].startswith("malformed CSV line")
