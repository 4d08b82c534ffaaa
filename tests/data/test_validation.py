"""forge/data/validation.py + ingest.py: quarantine with reasons, reconciling counts, dataset checks."""

import json

import pandas as pd
import pytest

from forge.config import load_config
from forge.data.ingest import DataCheckError, validate_dataset
from forge.data.validation import infer_schema
from tests.conftest import cli, run_cli
from tests.contract import cli_json

SCHEMA = """
  schema:
    id: {type: int, nullable: false, min: 0}
    amount: {type: float, nullable: false, min: 0, max: 1000}
    color: {type: str, nullable: true, allowed: [red, green, blue]}
    when: {type: datetime, nullable: true}
    label: {type: int, nullable: false}
"""


def _project(tmp_path, lines: list[str], extra: str = "") -> str:
    (tmp_path / "d.csv").write_text("id,amount,color,when,label\n" + "\n".join(lines) + "\n")
    cfg = tmp_path / "forge.yaml"
    cfg.write_text(f"name: t\ndata:\n  source: d.csv\n  target: label\n{SCHEMA}{extra}"
                   "  checks: {min_rows: 2, max_quarantined_fraction: 0.9}\n")
    return str(cfg)


@pytest.mark.integration
def test_every_bad_row_quarantined_with_its_reason(ray_session, tmp_path):
    good = [f"{i},{i * 1.5},red,2026-01-0{1 + i % 9},{i % 2}" for i in range(20)]
    bad = {
        "x1,5.0,red,2026-01-01,1": "column 'id': cannot parse",
        "21,abc,red,2026-01-01,1": "column 'amount': cannot parse",
        "22,,red,2026-01-01,1": "column 'amount': null not allowed",
        "23,-5,red,2026-01-01,0": "column 'amount': below min",
        "24,5000,red,2026-01-01,0": "column 'amount': above max",
        "25,5,purple,2026-01-01,0": "column 'color': unknown category",
        "26,5,red,not-a-date,0": "column 'when': cannot parse",
        "27,5,red": "malformed CSV line",
        "28,5,red,2026-01-01,0,extra": "malformed CSV line",
        "29,inf,red,2026-01-01,0": "column 'amount': not a finite",
    }
    res = validate_dataset(load_config(_project(tmp_path, good + list(bad))))
    lines = len(good) + len(bad)
    assert res.rows_in == lines == res.rows_valid + res.rows_quarantined
    assert res.rows_valid == len(good) and res.rows_quarantined == len(bad)
    q = pd.read_parquet(res.quarantine_path)
    assert len(q) == len(bad)
    for raw, reason in bad.items():
        key = raw.split(",")[0]
        hit = q[q["raw"].str.contains(f'"{key}"') | q["raw"].str.startswith(key + ",")]
        assert len(hit) == 1, raw
        assert reason in hit["reason"].iloc[0], (raw, hit["reason"].iloc[0])
    report = json.loads(res.report_path.read_text())
    assert report["rows_quarantined"] == len(bad) and report["passed"]


@pytest.mark.integration
def test_in_process_and_ray_data_validation_agree(ray_session, tmp_path):
    """A small CSV is validated in this process, a large one on Ray Data (data.in_process_bytes): the same
    RowValidator, so the same version hash, counts, quarantine lines and reasons, malformed lines included."""
    good = [f"{i},{i * 1.5},red,2026-01-0{1 + i % 9},{i % 2}" for i in range(40)]
    bad = ["x1,5.0,red,2026-01-01,1", "22,,red,2026-01-01,1", "25,5,purple,2026-01-01,0", "27,5,red",
           "28,5,red,2026-01-01,0,extra", '30,"5.0,red,2026-01-01,1']
    results = []
    for name, extra in (("here", ""), ("ray", "  in_process_bytes: 0\n")):
        folder = tmp_path / name
        folder.mkdir()
        results.append(validate_dataset(load_config(_project(folder, good[:20] + bad + good[20:], extra))))
    here, ray = results
    assert here.dataset.version == ray.dataset.version
    assert (here.rows_in, here.rows_valid, here.rows_quarantined) == (ray.rows_in, ray.rows_valid,
                                                                       ray.rows_quarantined)
    assert here.rows_quarantined >= len(bad) - 1  # the open quote may swallow what follows into one bad line
    key = ["line", "reason", "raw"]
    q = [pd.read_parquet(r.quarantine_path).sort_values(key).reset_index(drop=True) for r in results]
    pd.testing.assert_frame_equal(q[0], q[1])


@pytest.mark.integration
def test_dataset_check_failure_stops_with_report(ray_session, tmp_path):
    rows = [f"{i},1.0,red,2026-01-01,1" for i in range(5)]  # constant target
    with pytest.raises(DataCheckError) as e:
        validate_dataset(load_config(_project(tmp_path, rows)))
    failed = [c["check"] for c in e.value.report["dataset_checks"] if not c["passed"]]
    assert "target_not_constant" in failed
    assert not (tmp_path / ".forge" / "datasets" / "t" / "LATEST").exists()  # nothing versioned


def test_cli_dataset_failure_exits_1(tmp_path):
    rows = [f"{i},1.0,red,2026-01-01,1" for i in range(5)]
    r = cli("validate", "-c", _project(tmp_path, rows), "--json")
    assert r.returncode == 1, r.stderr
    assert "target_not_constant" in r.stderr


def test_cli_validate_json(tmp_path):
    rows = [f"{i},{i}.5,green,2026-01-02,{i % 2}" for i in range(30)] + ["bad,1,red,2026-01-01,0"]
    r = cli("validate", "-c", _project(tmp_path, rows), "--json")
    assert r.returncode == 0, r.stderr
    out = cli_json(r, "validate")
    assert out["rows_in"] == 31 and out["rows_quarantined"] == 1


@pytest.mark.integration  # the point is the process: it starts no Ray
def test_cli_validate_of_a_small_csv_starts_no_ray(tmp_path):
    """A CSV read in process needs no cluster: `forge validate` starts none (a start cost 4-6 s beside 1.5 s of
    work at 500k rows). A Ray address that nothing answers would fail any command that tried to join it."""
    from forge.data.loading import reads_in_process

    rows = [f"{i},{i}.5,green,2026-01-02,{i % 2}" for i in range(30)]
    cfg = _project(tmp_path, rows)
    r = run_cli("validate", "-c", cfg, "--json", env={"RAY_ADDRESS": "127.0.0.1:9"})
    assert r.returncode == 0, r.stderr
    assert cli_json(r, "validate")["rows_valid"] == 30
    assert reads_in_process(load_config(cfg))
    big = load_config(_project(tmp_path, rows, "  in_process_bytes: 0\n"))
    assert not reads_in_process(big)  # over the threshold: Ray Data, so the command starts Ray


def test_infer_schema_types_and_categories():
    df = pd.DataFrame({"a": ["1", "2", None], "b": ["1.5", "x", "2"] * 1, "c": ["u", "v", "u"],
                       "t": ["2026-01-01", "2026-01-02", None], "y": ["0", "1", "0"]})
    s = infer_schema(df, target="y")
    assert s["a"].type == "int" and s["a"].min is None  # an observed floor is not a rule
    assert s["b"].type == "str"  # a third of the values are not numbers
    assert s["c"].categories == ["u", "v"] and s["c"].allowed is None
    assert s["t"].type == "datetime"
    assert s["y"].nullable is False


def test_a_run_that_lost_more_than_the_limit_stops_naming_the_top_reasons(tmp_path):
    good = [f"{i},{i}.5,red,2026-01-02,{i % 2}" for i in range(95)]
    bad = [f"{i},-{i},red,2026-01-02,0" for i in range(100, 104)] + ["x,1,red,2026-01-01,0"]  # 5% lost
    cfg = tmp_path / "forge.yaml"
    (tmp_path / "d.csv").write_text("id,amount,color,when,label\n" + "\n".join(good + bad) + "\n")
    cfg.write_text(f"name: t\ndata:\n  source: d.csv\n  target: label\n{SCHEMA}  checks: {{min_rows: 2}}\n")
    r = cli("validate", "-c", str(cfg), "--json")
    assert r.returncode == 1, r.stderr
    assert "max_quarantined_fraction: observed 0.05, expected <= 0.01" in r.stderr
    # the top reasons, with counts and an example each, most frequent first
    lines = r.stderr.splitlines()
    first = next(i for i, ln in enumerate(lines) if "below min" in ln)
    assert lines[first].split()[0] == "4" and "got -100.0" in lines[first]
    assert "cannot parse" in lines[first + 1] and lines[first + 1].split()[0] == "1"
    assert not (tmp_path / ".forge" / "datasets" / "t" / "LATEST").exists()  # nothing versioned, nothing trained


def test_strict_turns_feature_warnings_into_exit_3(tmp_path):
    """A column that is the label in disguise is named; --strict stops there, without it the run goes on."""
    rows = [f"{i},{i}.5,{'red' if i % 2 else 'blue'},2026-01-02,{i % 2}" for i in range(60)]
    (tmp_path / "d.csv").write_text("id,amount,color,when,label\n" + "\n".join(rows) + "\n")
    cfg = tmp_path / "forge.yaml"
    cfg.write_text("name: t\ndata:\n  source: d.csv\n  target: label\n")
    r = cli("validate", "-c", str(cfg), "--json", "--strict")
    assert r.returncode == 3, r.stderr
    assert "warning: leakage: color: color alone reproduces the target" in r.stderr
    assert "warning: id_like: id" in r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert {w["kind"] for w in out["warnings"]} == {"leakage", "id_like", "constant"}  # "when" is one date
    r = cli("validate", "-c", str(cfg), "--json")
    assert r.returncode == 0 and "warning: leakage" in r.stderr
