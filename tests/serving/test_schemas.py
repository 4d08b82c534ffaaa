"""The request schema validated into plain dicts (`as_dicts`) answers as the documented model does."""

import json

import pytest
from pydantic import ValidationError

from forge.serving.schemas import as_dicts, instance_model, request_model

SCHEMA = {"age": {"type": "int", "min": 0, "max": 120, "nullable": False}, "spend": {"type": "float"},
          "plan": {"type": "str", "categories": ["a", "b"], "allowed": ["a", "b"]}, "region": {"type": "str"},
          "ok": {"type": "bool"}}
GOOD = {"age": 40.0, "spend": 1, "plan": "a", "region": "x", "ok": True}
BODIES = [
    {"instances": [GOOD]},
    {"instances": [{"age": 40, "spend": 1.5, "plan": None, "region": None, "ok": None, "user_id": 3}]},
    {"instances": [{"age": "40", "spend": "1", "plan": "z", "region": "x" * 300, "ok": 1, "zz": 2}]},
    {"instances": [{"age": 2**70, "spend": 1e400}]},
    {"instances": []}, {"instances": [{}] * 6}, {"instances": [GOOD], "extra": 1}, {"x": 1}, {"instances": "rows"},
    {"instances": [{"user_id": 5}, {"user_id": "u", "age": -1}]},
]


def _outcome(validate, raw: bytes, dump=None):
    try:
        body = validate(raw)
    except ValidationError as e:
        return [(x["loc"], x["type"].replace("model_type", "dict_type"), x["msg"]) for x in e.errors()]
    return dump(body) if dump else body


@pytest.mark.parametrize("entity", [None, "user_id"])
@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_dicts_equal_the_models_dump_and_errors(entity, body):
    """The same rows as model_dump (exclude_unset where fields may be omitted: online features fill them), the
    same error locations and messages; only "model_type" reads "dict_type" for a value that is not an object."""
    model = request_model(instance_model(SCHEMA, entity=entity), max_instances=5)
    raw = json.dumps(body).encode()
    want = _outcome(model.model_validate_json, raw, lambda b: b.model_dump(exclude_unset=entity is not None))
    got = _outcome(as_dicts(model).validate_json, raw)
    assert got == want
    if body is BODIES[0] and entity is None:
        row = got["instances"][0]
        assert row == {"age": 40, "spend": 1.0, "plan": "a", "region": "x", "ok": True}
        assert type(row["age"]) is int and type(row["spend"]) is float and type(got) is dict


def test_not_an_object_reads_dict_type():
    model = request_model(instance_model(SCHEMA), max_instances=5)
    with pytest.raises(ValidationError) as e:
        as_dicts(model).validate_json(b'{"instances": [1]}')
    assert [(x["loc"], x["type"], x["msg"]) for x in e.value.errors()] == [
        (("instances", 0), "dict_type", "Input should be an object")]
