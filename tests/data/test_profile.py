"""forge/data/profile.py: an inferred schema describes every row of its file and never quarantines one of them."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from forge.config import ColumnSchema, ForgeConfig
from forge.data.profile import SchemaInferenceError, infer_source_schema
from forge.data.rows import REASON, RowValidator
from forge.data.synthetic import generate, wide
from forge.data.validation import infer_schema


def seasonal(n: int = 2400, seed: int = 0) -> pd.DataFrame:
    """Hourly rows in time order: months and a season that first appear late, negatives only in winter."""
    rng = np.random.default_rng(seed)
    month = np.array(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])[
        np.arange(n) * 12 // n]
    temp = rng.normal(18, 4, n).round(1).clip(0.1)
    temp[-1] = -4.5  # the only negative value is in the last row
    season = np.where(np.arange(n) < 0.75 * n, "warm", "autumn")
    count = rng.integers(0, 300, n)
    return pd.DataFrame({"month": month, "hour": np.arange(n) % 24, "temp": temp, "season": season,
                         "count": count})


def _quarantined(path, schema) -> int:
    """Rows of the CSV file the validator would quarantine under schema (read as strings, as ingestion does)."""
    cols = pacsv.read_csv(path).column_names
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in cols}, strings_can_be_null=True))
    return table.num_rows - RowValidator(schema)(table).column(REASON).null_count


def _infer(tmp_path, frame: pd.DataFrame, target: str):
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    cfg = ForgeConfig.model_validate({"name": "t", "data": {"source": str(path), "target": target}})
    return path, infer_source_schema(cfg)


@pytest.mark.parametrize("order", ["time", "shuffled", "reversed"])
def test_schema_from_a_file_never_quarantines_a_row_of_it(tmp_path, order):
    frame = seasonal()
    frame = {"time": frame, "shuffled": frame.sample(frac=1, random_state=1), "reversed": frame[::-1]}[order]
    path, inferred = _infer(tmp_path, frame, "count")
    assert inferred.rows_read == len(frame) and not inferred.sampled
    s = inferred.schema
    assert s["month"].type == "str" and len(s["month"].categories) == 12  # the whole year, not the head
    assert s["season"].categories == ["autumn", "warm"]
    assert s["temp"].type == "float" and s["temp"].min is None  # an observed floor is not a rule
    assert all(c.allowed is None and c.min is None and c.max is None for c in s.values())
    assert _quarantined(path, s) == 0


@pytest.mark.parametrize("make", [lambda: generate(3000, seed=4), lambda: wide(3000, 20, seed=5)],
                         ids=["churn", "bench-wide"])
def test_generators_validate_whole(tmp_path, make):
    path, inferred = _infer(tmp_path, make(), "churned" if "churned" in make().columns else "target")
    assert _quarantined(path, inferred.schema) == 0


def test_late_types_widen(tmp_path):
    n = 6000
    frame = pd.DataFrame({"whole_then_fraction": [str(i) for i in range(n - 1)] + ["2.5"],
                          "dates_then_text": ["2026-01-01"] * (n - 1) + ["soon"],
                          "numbers_then_words": [str(i) for i in range(n // 2)] + ["w"] * (n - n // 2),
                          "y": range(n)})
    path, inferred = _infer(tmp_path, frame, "y")
    s = inferred.schema
    assert s["whole_then_fraction"].type == "float"
    assert s["dates_then_text"].type == "str"
    assert s["numbers_then_words"].type == "str"
    assert _quarantined(path, s) == 0


def test_rare_junk_is_named_and_quarantined(tmp_path):
    frame = pd.DataFrame({"x": [str(i) for i in range(999)] + ["oops"], "y": range(1000)})
    path, inferred = _infer(tmp_path, frame, "y")
    assert inferred.schema["x"].type == "int"
    assert "oops" in inferred.notes["x"] and "1 of 1000" in inferred.notes["x"]
    assert _quarantined(path, inferred.schema) == 1


def test_uninferable_columns_are_reported_not_guessed(tmp_path):
    with pytest.raises(SchemaInferenceError, match="column 'empty': all 50 values are null"):
        _infer(tmp_path, pd.DataFrame({"empty": [None] * 50, "y": range(50)}), "y")
    # Numbers in the head (the proposal), then a tenth of text: neither junk nor text, so it is not guessed.
    mixed = [str(i) for i in range(5400)] + [f"t{i}" for i in range(600)]
    with pytest.raises(SchemaInferenceError, match="column 'm': 5400 of 6000 values are numbers and 600 are not"):
        _infer(tmp_path, pd.DataFrame({"m": mixed, "y": range(6000)}), "y")


def test_strict_and_allowed_are_the_only_category_rules():
    table = pa.table({"c": ["a", "b", "new"]})
    soft = ColumnSchema(type="str", categories=["a", "b"])
    assert RowValidator({"c": soft})(table).column(REASON).null_count == 3
    for hard in (ColumnSchema(type="str", categories=["a", "b"], strict=True),
                 ColumnSchema(type="str", allowed=["a", "b"])):
        reasons = RowValidator({"c": hard})(table).column(REASON).to_pylist()
        assert reasons == [None, None, "column 'c': unknown category new"]


def test_infer_schema_of_a_frame_is_the_same_profile():
    df = pd.DataFrame({"a": [1, 2, 3, None], "b": ["u", "v", "u", None], "y": [0, 1, 0, 1]})
    s = infer_schema(df, target="y")
    assert s["a"].type == "int" and s["a"].min is None
    assert s["b"].categories == ["u", "v"] and s["b"].allowed is None
    assert s["y"].nullable is False
