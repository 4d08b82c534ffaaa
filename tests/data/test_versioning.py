"""forge/data/versioning.py: content-derived versions; same rows, same version; nothing new on re-runs."""

import json

import pandas as pd
import pytest

from forge.config import load_config
from forge.data.ingest import validate_dataset

pytestmark = pytest.mark.integration


def _cfg(tmp_path, name: str):
    (tmp_path / "forge.yaml").write_text(f"name: v\ndata:\n  source: {name}\n  target: y\n"
                                         "  checks: {min_rows: 2}\n")
    return load_config(tmp_path / "forge.yaml")


def test_same_content_same_version_any_name_or_order(ray_session, tmp_path):
    df = pd.DataFrame({"x": range(50), "c": ["a", "b"] * 25, "y": [0, 1] * 25})
    df.to_csv(tmp_path / "one.csv", index=False)
    df.sample(frac=1, random_state=1).to_csv(tmp_path / "two.csv", index=False)
    a = validate_dataset(_cfg(tmp_path, "one.csv"))
    b = validate_dataset(_cfg(tmp_path, "two.csv"))
    assert a.dataset.version == b.dataset.version
    assert a.created and not b.created
    again = validate_dataset(_cfg(tmp_path, "one.csv"))
    assert not again.created
    versions = [p for p in (tmp_path / ".forge" / "datasets" / "v").iterdir() if p.is_dir()]
    assert len(versions) == 1
    manifest = json.loads((versions[0] / "manifest.json").read_text())
    assert {"source", "schema", "rows", "hash", "created", "parent"} <= set(manifest)
    assert len(pd.read_parquet(versions[0] / "data.parquet")) == 50


def test_changed_content_new_version_with_parent(ray_session, tmp_path):
    df = pd.DataFrame({"x": range(50), "y": [0, 1] * 25})
    df.to_csv(tmp_path / "d.csv", index=False)
    a = validate_dataset(_cfg(tmp_path, "d.csv"))
    df.assign(x=df.x + 1).to_csv(tmp_path / "d.csv", index=False)
    b = validate_dataset(_cfg(tmp_path, "d.csv"))
    assert a.dataset.version != b.dataset.version
    assert b.dataset.manifest["parent"] == a.dataset.version
