"""bench/readme.py: the README's benchmark table is bench/out/results.json's rows, between the markers only."""

import pytest

from bench.readme import END, START, render, write

DATA = {"commit": "abc1234", "machine": {"cpus": 2, "memory_gb": 23.5}, "at": "2026-11-30T11:00:00Z", "quick": False,
        "results": [
            {"benchmark": "bench/ingest: 10 rows", "contender": "pyarrow", "seconds": 1.0, "peak_bytes": 2e8,
             "ratio": 1.0, "baseline": "pyarrow"},
            {"benchmark": "bench/ingest: 10 rows", "contender": "forge", "seconds": 2.5, "peak_bytes": 1e8,
             "ratio": 2.5, "baseline": "pyarrow", "ray_init_s": 5.1, "rows_valid": 10},
        ]}


def test_rows_and_figures_come_from_the_results():
    table = render(DATA)
    assert "`abc1234`" in table and "2 CPUs" in table
    assert "| ingest: 10 rows | **pyarrow** | 1.0 | 0.20 | 1.00 |  |" in table
    assert "| ingest: 10 rows | forge | 2.5 | 0.10 | 2.50 | ray_init_s 5.1, rows_valid 10 |" in table


def test_write_replaces_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\nafter\n")
    write("new table", readme)
    assert readme.read_text() == f"intro\n{START}\nnew table\n{END}\nafter\n"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit):
        write("x", readme)
