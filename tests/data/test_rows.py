"""forge/data/rows.py: row checks on Arrow batches, in process (no Ray): exact reasons, types, hashes."""

import json

import numpy as np
import pyarrow as pa

from forge.config import ColumnSchema
from forge.data.rows import HASH, RAW, REASON, RowValidator, row_hashes

SCHEMA = {
    "id": ColumnSchema(type="int", nullable=False, min=0),
    "amount": ColumnSchema(type="float", nullable=False, min=0, max=1000),
    "color": ColumnSchema(type="str", nullable=True, allowed=["red", "green"]),
    "when": ColumnSchema(type="datetime", nullable=True),
    "flag": ColumnSchema(type="bool", nullable=True),
}


def _strings(rows: list[tuple]) -> pa.Table:
    """A batch as the CSV reader gives it: every column a string, empty fields null."""
    cols = list(zip(*rows))
    return pa.table({name: pa.array(list(vals), pa.string()) for name, vals in zip(SCHEMA, cols)})


def test_each_failure_gets_its_exact_reason():
    rows = [
        ("1", "2.5", "red", "2026-01-01", "true"),
        ("x1", "2.5", "red", "2026-01-01", "true"),
        ("2.5", "2.5", "red", "2026-01-01", "true"),
        ("3", "abc", "red", "2026-01-01", "true"),
        ("4", None, "red", "2026-01-01", "true"),
        ("5", "   ", "red", "2026-01-01", "true"),
        ("6", "-5", "red", "2026-01-01", "true"),
        ("7", "5000", "red", "2026-01-01", "true"),
        ("8", "inf", "red", "2026-01-01", "true"),
        ("9", "5", "purple", "2026-01-01", "true"),
        ("10", "5", "red", "not-a-date", "true"),
        ("11", "5", "red", "2026-01-01", "maybe"),
        ("12", "5", "red", "2026-01-01 00:09:50.276540691", "no"),  # nanoseconds: kept to the microsecond
        ("-1", "abc", "purple", "nope", "maybe"),  # several faults: the first column's reason wins
    ]
    out = RowValidator(SCHEMA)(_strings(rows))
    assert out.column(REASON).to_pylist() == [
        None,
        "column 'id': cannot parse x1 as int",
        "column 'id': cannot parse 2.5 as int",
        "column 'amount': cannot parse abc as float",
        "column 'amount': null not allowed",
        "column 'amount': null not allowed",
        "column 'amount': below min 0 (got -5.0)",
        "column 'amount': above max 1000 (got 5000.0)",
        "column 'amount': not a finite number",
        "column 'color': unknown category purple",
        "column 'when': cannot parse not-a-date as datetime",
        "column 'flag': cannot parse maybe as bool",
        None,
        "column 'id': below min 0 (got -1.0)",
    ]
    raw = out.column(RAW).to_pylist()
    assert raw[0] is None and json.loads(raw[1])["id"] == "x1" and json.loads(raw[4])["amount"] is None
    assert out.slice(0, 1).select(list(SCHEMA)).to_pylist() == [
        {"id": 1, "amount": 2.5, "color": "red", "when": out.column("when")[0].as_py(), "flag": True}]
    assert out.schema.field("when").type == pa.timestamp("us")
    assert out.column("when")[12].as_py().microsecond == 276540


def test_values_arrow_will_not_cast_go_through_pandas_and_still_parse():
    rows = [(" 7 ", "1e3", None, "2026-01-01T10:00:00+02:00", " Yes "), ("8", "2", "green", "2026-01-02", "0")]
    out = RowValidator(SCHEMA)(_strings(rows))
    assert out.column(REASON).to_pylist() == [None, None]
    assert out.column("id").to_pylist() == [7, 8] and out.column("amount").to_pylist() == [1000.0, 2.0]
    assert out.column("flag").to_pylist() == [True, False]
    assert [t.hour for t in out.column("when").to_pylist()] == [8, 0]  # a time with a zone is stored as UTC


def test_typed_sources_are_checked_too():
    """Parquet / JSON give typed columns: NaN counts as missing, a fraction is not an int."""
    batch = pa.table({"id": pa.array([1.0, 2.5, 3.0]), "amount": pa.array([1.0, 1.0, np.nan]),
                      "color": pa.array([None, None, None], pa.null()),
                      "when": pa.array([0, 3600, 7200], pa.timestamp("s", tz="Europe/Berlin")),
                      "flag": pa.array([True, None, False])})
    out = RowValidator(SCHEMA)(batch)
    assert out.column(REASON).to_pylist() == [None, "column 'id': cannot parse 2.5 as int",
                                              "column 'amount': null not allowed"]
    assert out.column("id").to_pylist()[0] == 1 and out.column("color").null_count == 3
    assert out.column("flag").to_pylist()[0] is True
    assert [t.hour for t in out.column("when").to_pylist()] == [0, 1, 2]  # UTC, whatever the zone


def test_missing_column_quarantines_every_row():
    batch = _strings([("1", "2", "red", "2026-01-01", "true")]).drop(["flag"])
    out = RowValidator(SCHEMA)(batch)
    assert out.column(REASON).to_pylist() == ["flag: column missing"]


def test_row_hash_depends_on_content_only():
    rows = [(str(i), f"{i}.5", "red" if i % 2 else None, "2026-01-01", "true") for i in range(50)]
    v = RowValidator(SCHEMA)
    whole = v(_strings(rows)).column(HASH).to_numpy()
    split = np.concatenate([v(_strings(rows[:17])).column(HASH).to_numpy(), v(_strings(rows[17:])).column(HASH).to_numpy()])
    assert np.array_equal(whole, split)  # batch boundaries do not matter
    assert len(set(whole.tolist())) == 50
    typed = pa.table({"a": pa.array([1.0, None]), "b": pa.array(["x", None])})
    swapped = pa.table({"a": pa.array([None, 1.0]), "b": pa.array(["x", None])})
    assert not np.array_equal(row_hashes(typed), row_hashes(swapped))


def test_the_profile_pass_parse_is_reused_by_validation_with_the_same_result(monkeypatch):
    """In process, schema inference and validation read the same tables: each numeric column is cast once (the
    memo), and the validator's output is exactly what it gives without one, bad rows and blank strings included."""
    import forge.data.rows as rows_mod
    from forge.data.profile import profile_table
    from forge.data.rows import ParseMemo

    rows = [(str(i), f"{i}.5" if i % 7 else " ", "red" if i % 3 else "", "2026-01-01", "true") for i in range(60)]
    rows[5] = ("x5", "abc", "purple", "2026-01-01", "maybe")
    batch = _strings(rows)
    casts = []
    real = rows_mod._cast_or
    monkeypatch.setattr(rows_mod, "_cast_or", lambda raw, to, slow: casts.append(to) or real(raw, to, slow))
    memo = ParseMemo()
    profile_table(batch, {"id": "int", "amount": "float", "color": "str", "when": "datetime", "flag": "bool"}, memo)
    with_memo = RowValidator(SCHEMA, memo)(batch)
    assert casts.count(pa.float64()) == 2  # id and amount, once each for both passes
    assert with_memo.equals(RowValidator(SCHEMA)(batch))
    assert with_memo.column(REASON).to_pylist()[5] == "column 'id': cannot parse x5 as int"
    assert with_memo.column(REASON).to_pylist()[7] == "column 'amount': null not allowed"  # " " is missing
    assert not memo._entries  # released once validated
