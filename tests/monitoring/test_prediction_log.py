"""forge/monitoring/prediction_log.py: nothing lost, even when the writing process is killed."""

import subprocess
import sys
import textwrap

import pandas as pd

from forge.monitoring.prediction_log import PredictionLogger, read_log


def _record(i: int) -> dict:
    return {"request_id": f"r{i}", "row": 0, "timestamp": pd.Timestamp("2026-11-28 10:00:00") + pd.Timedelta(seconds=i),
            "model_name": "m", "model_version": "1", "variant": "champion", "prediction": i % 2, "score": 0.25,
            "latency_ms": 1.5, "x": float(i), "region": None if i % 5 == 0 else "north"}


def _writer(folder, n: int, then: str) -> subprocess.Popen:
    """A process that logs n records (flushes only every 60 s) and then dies hard or waits."""
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        from tests.monitoring.test_prediction_log import _record
        from forge.monitoring.prediction_log import PredictionLogger
        log = PredictionLogger({str(folder)!r}, flush_rows=10_000, flush_interval_s=60)
        for i in range({n}):
            log.log([_record(i)])
        print("logged", flush=True)
        if {then!r} == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.readline()
        log.close()
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_killed_writer_loses_nothing(tmp_path):
    p = _writer(tmp_path, 37, "kill")
    assert p.stdout.readline().strip() == "logged"
    p.wait(30)
    assert p.returncode == -9 and read_log(tmp_path).empty  # nothing reached Parquet before the kill
    log = PredictionLogger(tmp_path)  # the next writer (a restarted replica) recovers the dead one's records
    assert log.recovered == 37
    log.close()
    df = read_log(tmp_path)
    assert sorted(df["request_id"]) == sorted(f"r{i}" for i in range(37))
    assert df["region"].isna().sum() == 8 and df["x"].sum() == sum(range(37))
    assert not list(tmp_path.glob("wal-*"))


def test_live_writer_is_left_alone_and_counts_stay_exact(tmp_path):
    p = _writer(tmp_path, 12, "wait")
    assert p.stdout.readline().strip() == "logged"
    other = PredictionLogger(tmp_path)
    assert other.recovered == 0 and len(list(tmp_path.glob("wal-*.jsonl"))) == 2  # its segment and ours
    other.log([_record(100 + i) for i in range(5)])
    other.close()
    p.communicate("\n", timeout=30)  # graceful close of the first writer
    assert len(read_log(tmp_path)) == 17 and not list(tmp_path.glob("wal-*"))


def _request_writer_code(folder) -> str:
    return textwrap.dedent(f"""
        import os, signal, sys
        import pandas as pd
        from forge.monitoring.prediction_log import PredictionLogger
        log = PredictionLogger({str(folder)!r}, flush_rows=10_000, flush_interval_s=60)
        rows = [{{"x": float(i), "region": None if i == 1 else "north"}} for i in range(3)]
        log.log_request(rows, {{"row": [0, 1, 2], "prediction": [1, 0, 1], "score": [0.9, 0.2, 0.7]}},
                        {{"request_id": "req", "timestamp": pd.Timestamp("2026-11-28 10:00:00"), "model_name": "m",
                          "model_version": "1", "variant": "champion", "latency_ms": 2.0}})
        print("logged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)


def test_a_request_is_one_line_and_comes_back_as_its_rows(tmp_path):
    """log_request (the replica's path) writes one write-ahead line per request; recovery and flush both give
    one record per row, with the shared values on each; a segment of per-record lines (older) still recovers."""
    p = subprocess.run([sys.executable, "-c", _request_writer_code(tmp_path)], capture_output=True,
                       text=True, timeout=60)
    assert p.stdout.strip() == "logged" and p.returncode == -9
    (segment,) = tmp_path.glob("wal-*.jsonl")
    assert len(segment.read_text().splitlines()) == 1
    older = tmp_path / "wal-0-0-older.jsonl"  # a record per line, as before log_request
    older.write_text("".join(__import__("json").dumps(_record(i), default=str) + "\n" for i in range(2)))
    log = PredictionLogger(tmp_path)
    assert log.recovered == 5
    log.log_request([{"x": 9.0, "region": "south"}], {"row": [0], "prediction": [0], "score": [0.1]},
                    {"request_id": "live", "timestamp": pd.Timestamp("2026-11-28 11:00:00"), "model_name": "m",
                     "model_version": "1", "variant": "champion", "latency_ms": 1.0})
    log.close()
    df = read_log(tmp_path).set_index(["request_id", "row"])
    assert len(df) == 6 and pd.isna(df.loc[("req", 1), "region"]) and df.loc[("req", 2), "score"] == 0.7
    assert (df.xs("req")["model_version"] == "1").all() and df.loc[("live", 0), "x"] == 9.0
    assert pd.api.types.is_datetime64_any_dtype(df["timestamp"]) and set(df.index.get_level_values(0)) == {
        "req", "live", "r0", "r1"}


def test_write_ahead_lines_recover_what_either_encoder_wrote(tmp_path):
    """The fast encoder writes timestamps with a T and text as UTF-8; a value it cannot encode (pd.NaT, which an
    online-store fill can give) sends the line through json.dumps. Both recover to the same rows."""
    from forge.monitoring.prediction_log import _json_line, recover

    stamp = pd.Timestamp("2026-11-28 10:00:00.5")
    common = {"request_id": "q", "timestamp": stamp, "model_name": "m", "model_version": "1",
              "variant": "champion", "latency_ms": 1.0}
    fast = _json_line({"rows": [{"x": 0.1 + 0.2, "city": "Zürich\u2028"}], "per_row": {"row": [0], "score": [0.5]},
                       "common": common})
    slow = _json_line({"rows": [{"x": 1.0, "seen": pd.NaT}], "per_row": {"row": [1], "score": [0.25]},
                       "common": common})
    assert '"2026-11-28T10:00:00.500000"' in fast and '"NaT"' in slow  # one line from each encoder
    (tmp_path / "wal-0-0-test.jsonl").write_text(fast + slow, encoding="utf-8")
    assert recover(tmp_path) == 2
    df = read_log(tmp_path).set_index("row")
    assert df.loc[0, "x"] == 0.1 + 0.2 and df.loc[0, "city"] == "Zürich\u2028" and df.loc[1, "seen"] == "NaT"
    assert (df["timestamp"] == stamp).all()


def test_flushed_columns_are_what_the_records_frame_gave():
    """The flush builds Arrow columns straight from a request's rows: same names, order, types and values as
    the DataFrame of one record per row that it replaced, for rows that lack a field, a field only some requests
    carry, an int column with a null, an int beyond 64 bits and a column of mixed kinds. One change: a field a
    row lacks in a column kept as text is null, where the frame's NaN was written as the text "nan"."""
    import pyarrow as pa

    from forge.monitoring.prediction_log import _columns, _to_table

    ts = pd.Timestamp("2026-12-01 02:00:00")
    chunks = [
        ([{"a": 1, "b": "x"}, {"a": None, "b": "y"}], {"row": [0, 1], "score": [0.5, 0.25]},
         {"request_id": "r1", "timestamp": ts}),
        ([{"a": 3, "c": 2**70, "d": 2**60 + 1}, {"b": 7, "a": 4}], {"row": [0, 1], "score": [0.1, 0.2]},
         {"request_id": "r2", "timestamp": ts, "client_request_id": "mine"}),
    ]
    records = [{**row, **common, **{k: v[i] for k, v in per_row.items()}}
               for rows, per_row, common in chunks for i, row in enumerate(rows)]
    frame = pd.DataFrame.from_records(records)
    expected = {}
    for c in frame.columns:
        try:
            expected[c] = pa.array(frame[c], from_pandas=True)
        except (pa.ArrowException, OverflowError, ValueError, TypeError):
            expected[c] = pa.array([None if v is None else str(v) for v in frame[c]], pa.string())
    got = _to_table(_columns(chunks))
    assert got.column_names == list(frame.columns)
    assert got.column("a").type == pa.float64() and got.column("a").to_pylist() == [1.0, None, 3.0, 4.0]
    assert got.column("c").to_pylist() == [None, None, str(2**70), None]
    assert got.column("b").to_pylist() == ["x", "y", None, "7"]  # text and a number: kept as text
    assert got.column("client_request_id").to_pylist() == [None, None, "mine", "mine"]
    # an int column with a null is float64, as pandas made it, even past 2**53 (a replica's recovery crashed on it)
    assert got.column("d").to_pylist() == [None, None, float(2**60 + 1), None]
    for c in ("request_id", "timestamp", "row", "score"):
        assert got.column(c).to_pylist() == expected[c].to_pylist(), c


def test_validated_requests_take_the_transposed_path_with_the_same_result():
    """Rows that all carry the same fields (a validated request's do) are transposed in one step, and the values a
    request shares are converted once and repeated: the table is still the records frame's, value for value."""
    import pyarrow as pa

    from forge.monitoring import prediction_log as pl

    ts = [pd.Timestamp("2026-12-01 02:00:00"), pd.Timestamp("2026-12-01 02:00:01"), pd.Timestamp("2026-12-01 02:00:02")]
    chunks = [([{"x": float(i + j), "c": f"k{j}", "n": j} for j in range(3)],
               {"row": [0, 1, 2], "prediction": [1, 0, 1], "score": [0.9, 0.1, 0.8]},
               {"request_id": f"r{i}", "timestamp": ts[i], "latency_ms": 1.5 + i,
                **({"client_request_id": "mine"} if i == 1 else {})}) for i in range(3)]
    columns = pl._columns(chunks)
    assert isinstance(columns["request_id"], pl._Runs) and isinstance(columns["client_request_id"], list)
    records = [{**row, **common, **{k: v[i] for k, v in per_row.items()}}
               for rows, per_row, common in chunks for i, row in enumerate(rows)]
    frame = pd.DataFrame.from_records(records)
    got = pl._to_table(columns)
    assert got.column_names == list(frame.columns)
    for c in frame.columns:
        expected = pa.array(frame[c], from_pandas=True)
        assert got.column(c).to_pylist() == expected.to_pylist(), c
    assert got.column("request_id").type == pa.large_string() and got.column("timestamp").type == pa.timestamp("us")
    # a row with as many fields but another name (one the shared values override) falls back to a lookup per row
    odd = [([{"x": 1.0, "c": "a"}, {"x": 2.0, "request_id": "own"}], {"row": [0, 1]}, {"request_id": "r"})]
    assert pl._to_table(pl._columns(odd)).to_pydict() == {"x": [1.0, 2.0], "c": ["a", None],
                                                          "request_id": ["r", "r"], "row": [0, 1]}
