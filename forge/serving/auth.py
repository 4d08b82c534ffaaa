"""JWT auth: one Settings, PyJWT, FastAPI dependencies for scopes.

Tokens carry `sub`, `exp` and a space-separated `scope`. The service refuses to
start with auth on and no secret, or with the well-known dev secret outside dev mode.
"""


import os
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from fastapi import HTTPException, Request

from forge.config import AuthConfig

DEV_SECRET = "forge-dev-secret-change-me"
KNOWN_DEFAULTS = {DEV_SECRET, "secret", "changeme", "change-me", "changethis", ""}
SCOPES = ("predict", "admin")


class AuthSetupError(Exception):
    """Auth is misconfigured; the service must not start."""


@dataclass(frozen=True)
class Settings:
    enabled: bool
    algorithm: str
    signing_key: str | None  # HS256 secret or RS256 private key (token creation)
    verify_key: str | None  # HS256 secret or RS256 public key

    @classmethod
    def from_config(cls, auth: AuthConfig, environ: dict | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        if not auth.enabled:
            return cls(False, auth.algorithm, None, None)
        if auth.algorithm == "RS256":
            if not auth.public_key_path:
                raise AuthSetupError("serving.auth.public_key_path: required for RS256")
            public = Path(auth.public_key_path).read_text()
            return cls(True, "RS256", env.get("FORGE_JWT_PRIVATE_KEY"), public)
        secret = env.get("FORGE_JWT_SECRET")
        if not secret:
            raise AuthSetupError("FORGE_JWT_SECRET is not set and serving.auth.enabled is true: refusing to start "
                                 "(set a secret, or serving.auth.enabled: false to run without auth)")
        if secret in KNOWN_DEFAULTS and not auth.dev_mode:
            raise AuthSetupError("FORGE_JWT_SECRET is a well-known default: refusing to start outside dev mode "
                                 "(serving.auth.dev_mode: true allows it locally)")
        return cls(True, "HS256", secret, secret)


def create_token(settings: Settings, sub: str, scopes: list[str], ttl_s: int = 3600) -> str:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"--scope: unknown scopes {unknown} (known: {', '.join(SCOPES)})")
    if not settings.signing_key:
        raise AuthSetupError("no signing key: set FORGE_JWT_SECRET (HS256) or FORGE_JWT_PRIVATE_KEY (RS256)")
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + int(ttl_s), "scope": " ".join(scopes)}
    return jwt.encode(claims, settings.signing_key, algorithm=settings.algorithm)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def verify(settings: Settings, header: str | None) -> dict:
    """Claims of a valid bearer token; 401 for anything else."""
    if not header:
        raise _unauthorized("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    try:
        # algorithms pinned: 'none' and algorithm confusion are rejected by PyJWT.
        return jwt.decode(token.strip(), settings.verify_key, algorithms=[settings.algorithm],
                          options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token expired") from None
    except jwt.InvalidTokenError as e:
        raise _unauthorized(f"invalid token: {e}") from None


def require(settings: Settings, scope: str):
    """A FastAPI dependency: the request's token must carry `scope` (403 otherwise)."""

    def dependency(request: Request) -> dict:
        if not settings.enabled:
            return {"sub": "anonymous", "scope": " ".join(SCOPES)}
        claims = verify(settings, request.headers.get("authorization"))
        if scope not in str(claims.get("scope", "")).split():
            raise HTTPException(status_code=403, detail=f"token lacks scope {scope!r}")
        return claims

    return dependency
