"""Byte-level bad files through `forge validate` (in process: a small CSV file is read there, with no Ray): invalid
UTF-8, NUL bytes, an unterminated quote at the end, a truncated Parquet file (read through Ray Data). Each is either
quarantined with a reason (counts reconcile) or a clear exit 1/2; never a crashed Ray task's trace."""

import json

import pandas as pd
import pytest

from tests.conftest import cli
from tests.data.test_validation import SCHEMA

GOOD = [f"{i},{i * 1.5},red,2026-01-0{1 + i % 9},{i % 2}".encode() for i in range(30)]
HEADER = b"id,amount,color,when,label\n"


def _project(tmp_path, name: str, data: bytes, fmt: str = "csv") -> str:
    (tmp_path / f"d.{fmt}").write_bytes(data)
    cfg = tmp_path / "forge.yaml"
    cfg.write_text(f"name: {name}\ndata:\n  source: d.{fmt}\n  target: label\n{SCHEMA}"
                   "  checks: {min_rows: 2, max_quarantined_fraction: 0.9}\n")
    return str(cfg)


def _validate(cfg: str):
    r = cli("validate", "-c", cfg, "--json")
    assert "Traceback" not in r.stderr and "RayTaskError" not in r.stderr, r.stderr[-3000:]
    return r


@pytest.mark.parametrize("name,bad,reason", [
    ("utf8", b"30,5.0,r\xffd,2026-01-01,1", "invalid UTF-8"),  # a byte that is no UTF-8
    ("nul", b"31,5.0,re\x00d,2026-01-01,1", "color"),  # a NUL inside a field
    # Bad bytes on a line that also has a field too many: pyarrow would hand the handler text it cannot decode.
    ("utf8_wide", b"32,5.0,r\xffd,2026-01-01,1,extra", "invalid UTF-8"),
])
def test_bad_bytes_in_a_row_are_quarantined_with_a_reason(tmp_path, name, bad, reason):
    r = _validate(_project(tmp_path, name, HEADER + b"\n".join([*GOOD, bad]) + b"\n"))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["rows_in"] == 31 == out["rows_valid"] + out["rows_quarantined"] and out["rows_valid"] == 30
    q = pd.read_parquet(out["quarantine_path"])
    assert len(q) == 1 and reason in q["reason"].iloc[0], q.to_dict("records")


def test_unterminated_quote_at_the_end_is_quarantined(tmp_path):
    r = _validate(_project(tmp_path, "quote", HEADER + b"\n".join(GOOD) + b'\n40,5.0,"red,2026-01-01,1\n'))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["rows_valid"] == 30 and out["rows_in"] == out["rows_valid"] + out["rows_quarantined"] == 31
    q = pd.read_parquet(out["quarantine_path"])
    assert "malformed CSV" in q["reason"].iloc[0] and "40" in q["raw"].iloc[0]


@pytest.mark.integration  # a Parquet source is read through Ray Data
def test_truncated_parquet_is_a_clear_error(ray_session, tmp_path):
    frame = pd.DataFrame({"id": range(30), "amount": [1.5] * 30, "color": ["red"] * 30,
                          "when": ["2026-01-01"] * 30, "label": [0, 1] * 15})
    frame.to_parquet(tmp_path / "full.parquet")
    data = (tmp_path / "full.parquet").read_bytes()
    r = _validate(_project(tmp_path, "trunc", data[: len(data) // 2], fmt="parquet"))
    assert r.returncode in (1, 2), r.stderr[-3000:]
    assert "d.parquet" in r.stderr and "Parquet" in r.stderr, r.stderr[-3000:]
