"""forge/serving/auth.py: token rules and the refusal to start insecurely (unit level)."""

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time

import jwt
import pytest
from fastapi import HTTPException

from forge.config import AuthConfig
from forge.serving.auth import AuthSetupError, Settings, create_token, estimated_bits, verify

SECRET = secrets.token_hex(32)
S = Settings(True, "HS256", SECRET, SECRET)
GENERIC = "invalid or missing credentials"


def test_refuses_to_start_without_secret():
    with pytest.raises(AuthSetupError, match="FORGE_JWT_SECRET"):
        Settings.from_config(AuthConfig(), environ={})


@pytest.mark.parametrize("weak", ["hunter2", "test-secret-" + "x" * 24, "a" * 64, "0123456789" * 3])
def test_refuses_weak_or_default_secrets_outside_dev_mode(weak):
    with pytest.raises(AuthSetupError, match="well-known default|too weak"):
        Settings.from_config(AuthConfig(), environ={"FORGE_JWT_SECRET": weak})
    assert Settings.from_config(AuthConfig(dev_mode=True), environ={"FORGE_JWT_SECRET": weak}).enabled


@pytest.mark.parametrize("strong", [secrets.token_hex(32), secrets.token_urlsafe(32)])
def test_accepts_random_secrets(strong):
    assert estimated_bits(strong) >= 160
    assert Settings.from_config(AuthConfig(), environ={"FORGE_JWT_SECRET": strong}).enabled


def test_secret_from_a_mounted_file(tmp_path):
    (tmp_path / "secret").write_text(SECRET + "\n")
    settings = Settings.from_config(AuthConfig(), environ={"FORGE_JWT_SECRET_FILE": str(tmp_path / "secret")})
    assert settings.signing_key == SECRET
    with pytest.raises(AuthSetupError, match="FORGE_JWT_SECRET_FILE: cannot read"):
        Settings.from_config(AuthConfig(), environ={"FORGE_JWT_SECRET_FILE": str(tmp_path / "missing")})


def test_auth_off_only_when_explicit():
    assert not Settings.from_config(AuthConfig(enabled=False), environ={}).enabled


def _refused(settings, header):
    with pytest.raises(HTTPException) as e:
        verify(settings, header)
    assert e.value.status_code == 401 and e.value.detail == GENERIC  # never PyJWT's own text
    return True


@pytest.mark.parametrize("header", [None, "Token abc", "Bearer", "Bearer not.a.jwt"])
def test_bad_headers_are_401_with_a_generic_body(header):
    assert _refused(S, header)


def _claims(**over):
    now = int(time.time())
    return {k: v for k, v in {"sub": "x", "iat": now, "exp": now + 60, "scope": "predict", **over}.items()
            if v is not None}


def test_forged_none_expired_and_incomplete_tokens_are_401():
    none = jwt.encode(_claims(), None, algorithm="none")
    forged = jwt.encode(_claims(), secrets.token_hex(32), algorithm="HS256")
    expired = jwt.encode(_claims(exp=int(time.time()) - 30), SECRET, algorithm="HS256")
    no_exp = jwt.encode(_claims(exp=None), SECRET, algorithm="HS256")
    no_sub = jwt.encode(_claims(sub=None), SECRET, algorithm="HS256")
    too_long = jwt.encode(_claims(exp=int(time.time()) + 10 * 86400), SECRET, algorithm="HS256")
    for token in (none, forged, expired, no_exp, no_sub, too_long):
        assert _refused(S, f"Bearer {token}")
    assert verify(S, f"Bearer {create_token(S, 'x', ['predict'])}")["scope"] == "predict"


def test_leeway_accepts_small_clock_skew_only():
    skewed = jwt.encode(_claims(exp=int(time.time()) - 3), SECRET, algorithm="HS256")
    assert verify(S, f"Bearer {skewed}")["sub"] == "x"  # 3 s past exp, within the 10 s leeway
    assert _refused(dataclasses.replace(S, leeway_s=0), f"Bearer {skewed}")


def test_a_verified_token_is_kept_only_while_valid_and_only_byte_for_byte():
    """The replica keeps the claims of a token it verified (a client resends the same one): a hit is checked
    against the clock again, and a token that differs anywhere (a forged signature) is verified in full."""
    from forge.serving.auth import _VerifiedTokens

    strict = dataclasses.replace(S, leeway_s=0)
    kept = _VerifiedTokens(strict, max_entries=2)
    token = jwt.encode(_claims(exp=int(time.time()) + 2), SECRET, algorithm="HS256")
    assert kept.claims(f"Bearer {token}")["sub"] == "x" and kept.claims(f"Bearer {token}")["sub"] == "x"
    head, body, _ = token.split(".")
    forged = f"{head}.{body}.{base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b'=').decode()}"
    with pytest.raises(HTTPException) as e:
        kept.claims(f"Bearer {forged}")
    assert e.value.status_code == 401
    for sub in ("a", "b", "c"):  # bounded: the oldest entry goes
        kept.claims(f"Bearer {jwt.encode(_claims(sub=sub), SECRET, algorithm='HS256')}")
    assert len(kept._claims) == 2
    assert kept.claims(f"Bearer {token}")["sub"] == "x"
    time.sleep(3.1)  # past exp: refused although it is kept
    with pytest.raises(HTTPException) as e:
        kept.claims(f"Bearer {token}")
    assert e.value.status_code == 401 and f"Bearer {token}" not in kept._claims


def test_issuer_and_audience_required_when_set():
    strict = dataclasses.replace(S, issuer="forge", audience="churn-api")
    good = create_token(strict, "x", ["predict"])
    assert jwt.decode(good, options={"verify_signature": False})["iss"] == "forge"
    assert verify(strict, f"Bearer {good}")["aud"] == "churn-api"
    for bad in (_claims(), _claims(iss="other", aud="churn-api"), _claims(iss="forge", aud="other")):
        assert _refused(strict, f"Bearer {jwt.encode(bad, SECRET, algorithm='HS256')}")


def test_rs256_rejects_hs256_tokens_signed_with_the_public_key():
    """The classic confusion attack: an HS256 token whose HMAC key is the server's RSA public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    rs = Settings(True, "RS256", private, public)
    assert verify(rs, f"Bearer {create_token(rs, 'x', ['admin'])}")["scope"] == "admin"
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(_claims(scope="admin")).encode()).rstrip(b"=")
    sig = hmac.new(public.encode(), header + b"." + body, hashlib.sha256).digest()
    confused = b".".join([header, body, base64.urlsafe_b64encode(sig).rstrip(b"=")]).decode()
    assert _refused(rs, f"Bearer {confused}")


def test_unknown_scope_and_long_ttl_rejected_at_creation():
    with pytest.raises(ValueError, match="unknown scopes"):
        create_token(S, "x", ["root"])
    with pytest.raises(ValueError, match="--ttl"):
        create_token(S, "x", ["predict"], ttl_s=S.max_ttl_s + 1)


def test_request_model_refuses_only_what_a_person_wrote():
    """Observed categories and ranges are served (and counted); allowed, strict and written bounds are 422."""
    from pydantic import ValidationError

    from forge.serving.schemas import instance_model, soft_categories, unknown_in_rows

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
    rows = [{"month": m} for m in ("Jan", "Dec", "Oct", None)] + [{"plan": "pro"}]  # null and absent: not new
    assert unknown_in_rows(rows, soft) == {"month": 2}


def test_the_deployment_carries_no_rs256_private_key(tmp_path, monkeypatch):
    """The deployment is pickled into Ray's GCS: with RS256 only the public key goes in, even when the deploying
    process holds the private key (as `forge token create` does)."""
    import cloudpickle
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from forge.serving.app import build_app
    from tests.conftest import write_project

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    (tmp_path / "public.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    monkeypatch.setenv("FORGE_JWT_PRIVATE_KEY", private)
    monkeypatch.setenv("FORGE_SERVING__AUTH__ALGORITHM", "RS256")
    monkeypatch.setenv("FORGE_SERVING__AUTH__PUBLIC_KEY_PATH", str(tmp_path / "public.pem"))
    from forge.config import load_config

    cfg = load_config(write_project(tmp_path / "p", rows=50))
    assert cfg.serving.auth.algorithm == "RS256"
    pickled = cloudpickle.dumps(build_app(cfg)._bound_deployment.func_or_class)
    body = private.splitlines()[5].encode()  # a line of the key itself, not its PEM header
    assert body not in pickled and b"PRIVATE KEY" not in pickled
    assert key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                                         ).splitlines()[2] in pickled  # the check is looking in the right place
