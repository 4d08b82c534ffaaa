"""forge/data/csv_ranges.py: a file cut at any byte gives every line once, in order; malformed lines keep their number.

The read tasks are called in this process (no Ray), with ranges far smaller than real ones so that
cuts fall everywhere: inside a field, on a newline, inside a quoted value, in the header.
"""

import json

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from forge.data.csv_ranges import CSVRanges, head, line_numbers
from forge.data.loading import SourceError, source_files
from forge.data.rows import MALFORMED

LINES = ["id,name,amount", *(f'{i},"n, {i}",{i * 1.5}' for i in range(40)), "40,,", "41,last,9"]


def _blocks(path, range_bytes: int, keep_malformed: bool = False, here: bool = False) -> list[pa.Table]:
    """The ranges' tables as Ray's read tasks give them, or (here) as the in-process read does, in threads."""
    fs = pafs.LocalFileSystem()
    source = CSVRanges([str(path)], fs, keep_malformed)
    source.range_bytes = range_bytes
    if here:
        return list(source.read_here())
    tasks = source.get_read_tasks(1)
    assert len(tasks) == source.num_ranges()
    return [t for task in tasks for t in task()]


def _read(path, range_bytes: int) -> pa.Table:
    return pa.concat_tables(_blocks(path, range_bytes))


@pytest.mark.parametrize("range_bytes", [1, 7, 23, 64, 1000, 1 << 20])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("trailing", [True, False])
def test_every_line_once_in_order_wherever_the_cuts_fall(tmp_path, range_bytes, newline, trailing):
    path = tmp_path / "d.csv"
    path.write_bytes((newline.join(LINES) + (newline if trailing else "")).encode())
    t = _read(path, range_bytes)
    assert t.column_names == ["id", "name", "amount"]
    assert t.column("id").to_pylist() == [str(i) for i in range(42)]
    assert t.column("name").to_pylist()[:2] == ["n, 0", "n, 1"]  # the quoted comma stays in its field
    assert t.column("name").to_pylist()[40] is None and t.column("amount").to_pylist()[41] == "9"


@pytest.mark.parametrize("here", [False, True])  # True: pyarrow parses in threads and numbers no row
@pytest.mark.parametrize("range_bytes", [5, 31, 1 << 20])
def test_malformed_lines_are_recorded_with_their_line_number(tmp_path, range_bytes, here):
    lines = LINES[:10] + ["oops"] + LINES[10:30] + ["1,2,3,4"] + LINES[30:]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    blocks = _blocks(path, range_bytes, keep_malformed=True, here=here)
    good = pa.concat_tables([b for b in blocks if MALFORMED not in b.column_names])
    assert good.num_rows == len(LINES) - 1  # every good line, and only those
    # Malformed lines travel in blocks of their own (a task on another node cannot write to the driver's disk).
    found = [json.loads(r) for b in blocks if MALFORMED in b.column_names for r in b.column(MALFORMED).to_pylist()]
    recs = line_numbers(None, found)
    got = sorted((r["line"], r["raw"]) for r in recs)
    assert got == [(11, "oops"), (32, "1,2,3,4")]  # 1-based, the header is line 1
    assert all(r["reason"].startswith("malformed CSV line: expected 3 columns") for r in recs)


def test_head_reads_the_first_rows_in_process(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("\n".join(LINES) + "\n")
    t = head(pafs.LocalFileSystem(), str(path), 5)
    assert t.num_rows == 5 and t.column("id").to_pylist() == ["0", "1", "2", "3", "4"]


def test_folder_lists_files_but_not_hidden_ones(tmp_path):
    (tmp_path / "parts").mkdir()
    for name in ("b.csv", "a.csv", ".hidden.csv", "_SUCCESS"):
        (tmp_path / "parts" / name).write_text("x\n1\n")
    files = source_files(None, str(tmp_path / "parts"))
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.csv", "b.csv"]
    with pytest.raises(SourceError, match="data.source"):
        source_files(None, str(tmp_path / "nothing-*.csv"))


def test_a_compressed_file_is_one_range_with_its_malformed_lines_numbered(tmp_path):
    import gzip

    lines = LINES[:5] + ["oops"] + LINES[5:]
    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    blocks = _blocks(path, 7, keep_malformed=True)
    assert pa.concat_tables([b for b in blocks if MALFORMED not in b.column_names]).num_rows == len(LINES) - 1
    found = [json.loads(r) for b in blocks if MALFORMED in b.column_names for r in b.column(MALFORMED).to_pylist()]
    assert [(r["line"], r["raw"]) for r in line_numbers(None, found)] == [(6, "oops")]
    assert head(pafs.LocalFileSystem(), str(path), 3).column("id").to_pylist() == ["0", "1", "2"]
