"""forge/serving/auth.py: token rules and the refusal to start insecurely (unit level)."""

import time

import jwt
import pytest
from fastapi import HTTPException

from forge.config import AuthConfig
from forge.serving.auth import DEV_SECRET, AuthSetupError, Settings, create_token, verify

S = Settings(True, "HS256", "s" * 32, "s" * 32)


def test_refuses_to_start_without_secret():
    with pytest.raises(AuthSetupError, match="FORGE_JWT_SECRET"):
        Settings.from_config(AuthConfig(), environ={})


def test_refuses_known_default_outside_dev_mode():
    with pytest.raises(AuthSetupError, match="well-known default"):
        Settings.from_config(AuthConfig(), environ={"FORGE_JWT_SECRET": DEV_SECRET})
    assert Settings.from_config(AuthConfig(dev_mode=True), environ={"FORGE_JWT_SECRET": DEV_SECRET}).enabled


def test_auth_off_only_when_explicit():
    assert not Settings.from_config(AuthConfig(enabled=False), environ={}).enabled


@pytest.mark.parametrize("header,detail", [
    (None, "missing"), ("Token abc", "malformed"), ("Bearer", "malformed"), ("Bearer not.a.jwt", "invalid"),
])
def test_bad_headers_are_401(header, detail):
    with pytest.raises(HTTPException) as e:
        verify(S, header)
    assert e.value.status_code == 401 and detail in e.value.detail


def test_alg_none_forged_and_expired_are_401():
    claims = {"sub": "x", "exp": int(time.time()) + 60, "scope": "predict"}
    none = jwt.encode(claims, None, algorithm="none")
    forged = jwt.encode(claims, "other-secret-" + "y" * 20, algorithm="HS256")
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, S.signing_key, algorithm="HS256")
    for token in (none, forged, expired):
        with pytest.raises(HTTPException) as e:
            verify(S, f"Bearer {token}")
        assert e.value.status_code == 401
    assert verify(S, f"Bearer {create_token(S, 'x', ['predict'])}")["scope"] == "predict"


def test_unknown_scope_rejected_at_creation():
    with pytest.raises(ValueError, match="unknown scopes"):
        create_token(S, "x", ["root"])


def test_request_model_refuses_only_what_a_person_wrote():
    """Observed categories and ranges are served (and counted); allowed, strict and written bounds are 422."""
    import pandas as pd
    from pydantic import ValidationError

    from forge.serving.schemas import instance_model, soft_categories, unknown_categories

    schema = {"month": {"type": "str", "categories": ["Jan", "Feb"]},
              "plan": {"type": "str", "allowed": ["basic", "pro"]},
              "tier": {"type": "str", "categories": ["a"], "strict": True},
              "temp": {"type": "float"}, "age": {"type": "int", "min": 0}}
    Model = instance_model(schema)
    ok = Model(month="Dec", plan="pro", tier="a", temp=-4.5, age=3)
    assert ok.month == "Dec" and ok.temp == -4.5
    for bad in ({"plan": "gold"}, {"tier": "b"}, {"age": -1}):
        with pytest.raises(ValidationError):
            Model(**{"month": "Jan", "plan": "pro", "tier": "a", "temp": 1.0, "age": 1, **bad})
    soft = soft_categories(schema)
    assert set(soft) == {"month"}
    frame = pd.DataFrame({"month": ["Jan", "Dec", "Oct", None]})
    assert unknown_categories(frame, soft) == {"month": 2}
