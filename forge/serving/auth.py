"""JWT auth: one Settings, PyJWT, FastAPI dependencies for scopes (as FastAPI's security docs and OWASP's JWT
cheat sheet advise).

Tokens carry `sub`, `exp`, `iat` and a space-separated `scope` (and `iss`/`aud` when configured). The service
refuses to start with auth on and no secret, a well-known default outside dev mode, or a secret too weak to
resist guessing. A refused token gets one generic 401 body; why it was refused goes to the log.
"""

# No `from __future__ import annotations`: `require`'s dependency is pickled by value into the replicas, where a
# string annotation "Request" no longer resolves and FastAPI took `request` for a query parameter (422).
import collections
import dataclasses
import logging
import math
import os
import secrets
import stat
import time
from pathlib import Path

import jwt
from fastapi import HTTPException, Request

from forge.config import AuthConfig, ForgeConfig
from forge.errors import UsageError

DEV_SECRET = "forge-dev-secret-change-me"
KNOWN_DEFAULTS = {DEV_SECRET, "secret", "changeme", "change-me", "changethis", "hunter2", ""}
SCOPES = ("predict", "admin")
MIN_SECRET_CHARS = 32
MIN_SECRET_BITS = 160  # estimated; `openssl rand -hex 32` (~250) and secrets.token_urlsafe(32) (~210) pass
DEV_SECRET_FILE = "jwt-dev-secret"
log = logging.getLogger("forge.serving.auth")


class AuthSetupError(UsageError):
    """Auth is misconfigured; the service must not start."""


def estimated_bits(secret: str) -> float:
    """Length x the empirical Shannon entropy per character: a lower bound's estimate, not a proof."""
    if not secret:
        return 0.0
    counts = collections.Counter(secret)
    per_char = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    return per_char * len(secret)


@dataclasses.dataclass(frozen=True)
class Settings:
    enabled: bool
    algorithm: str
    signing_key: str | None  # HS256 secret or RS256 private key (token creation)
    verify_key: str | None  # HS256 secret or RS256 public key
    issuer: str | None = None
    audience: str | None = None
    leeway_s: float = 10
    max_ttl_s: int = 86400

    def verifier(self) -> "Settings":
        """What a replica needs to check tokens, and no more: with RS256 the public key only (a private key in
        the deploying process's environment is not pickled into the deployment, and so never lands in Ray's
        GCS). HS256 checks with the signing secret itself, which is why production runs RS256."""
        return dataclasses.replace(self, signing_key=None) if self.algorithm == "RS256" else self

    @classmethod
    def from_config(cls, auth: AuthConfig, environ: dict | None = None, dev_folder: Path | None = None) -> "Settings":
        """Settings from the config and the environment (FORGE_JWT_SECRET, FORGE_JWT_SECRET_FILE). In dev mode
        with no secret set, the local development secret in `dev_folder` (made there on first use)."""
        env = os.environ if environ is None else environ
        claims = {"issuer": auth.issuer, "audience": auth.audience, "leeway_s": auth.leeway_s,
                  "max_ttl_s": auth.max_ttl_s}
        if not auth.enabled:
            return cls(False, auth.algorithm, None, None, **claims)
        if auth.algorithm == "RS256":
            if not auth.public_key_path:
                raise AuthSetupError("serving.auth.public_key_path: required for RS256")
            public = Path(auth.public_key_path).read_text()
            return cls(True, "RS256", env.get("FORGE_JWT_PRIVATE_KEY"), public, **claims)
        secret = env.get("FORGE_JWT_SECRET") or _secret_file(env.get("FORGE_JWT_SECRET_FILE"))
        if not secret and auth.dev_mode and dev_folder is not None:
            secret = dev_secret(dev_folder)
        if not secret:
            raise AuthSetupError("FORGE_JWT_SECRET is not set and serving.auth.enabled is true: refusing to start "
                                 "(set it to 32 random bytes, e.g. `openssl rand -hex 32`; or serving.auth.dev_mode: "
                                 "true for a local development secret; or serving.auth.enabled: false)")
        if not auth.dev_mode:
            _check_secret(secret)
        return cls(True, "HS256", secret, secret, **claims)


def settings_for(cfg: ForgeConfig) -> Settings:
    """A project's auth settings: in dev mode its local development secret lives in the workspace's node-local
    part (`forge serve`, `forge up` and `forge token create` on this machine find the same one)."""
    folder = None
    if cfg.serving.auth.dev_mode:
        from forge.workspace import Workspace

        folder = Workspace.from_config(cfg).local_dir("secrets")
    return Settings.from_config(cfg.serving.auth, dev_folder=folder)


def dev_secret(folder: Path) -> str:
    """The local development secret in `folder`: 32 random bytes made on first use, readable by its owner only.
    A file others can read is refused: anyone who can read it can mint admin tokens for the local app."""
    path = folder / DEV_SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise AuthSetupError(f"{path}: the development secret is readable by others (mode {mode:o}): "
                                 f"`chmod 600 {path}` or delete it") from None
        for _ in range(20):  # another command may have just created it and not yet written it
            secret = path.read_text().strip()
            if secret:
                return secret
            time.sleep(0.05)
        raise AuthSetupError(f"{path}: the development secret is empty: delete it to make a new one") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    log.warning("forge: made a local development secret in %s (dev mode)", path)
    return path.read_text().strip()


def _secret_file(path: str | None) -> str | None:
    """The secret from a mounted file (a Kubernetes Secret volume): FORGE_JWT_SECRET_FILE."""
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as e:
        raise AuthSetupError(f"FORGE_JWT_SECRET_FILE: cannot read {path}: {e}") from None


def _check_secret(secret: str) -> None:
    if secret in KNOWN_DEFAULTS:
        raise AuthSetupError("FORGE_JWT_SECRET is a well-known default: refusing to start outside dev mode "
                             "(serving.auth.dev_mode: true allows it locally)")
    if len(secret) < MIN_SECRET_CHARS or estimated_bits(secret) < MIN_SECRET_BITS:
        raise AuthSetupError(f"FORGE_JWT_SECRET is too weak: use at least 32 random bytes, e.g. `openssl rand -hex "
                             f"32` (it has {len(secret)} characters, about {estimated_bits(secret):.0f} bits)")


def create_token(settings: Settings, sub: str, scopes: list[str], ttl_s: int = 3600) -> str:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise UsageError(f"--scope: unknown scopes {unknown} (known: {', '.join(SCOPES)})")
    if not 0 < ttl_s <= settings.max_ttl_s:
        raise UsageError(f"--ttl: {ttl_s} s is outside 1..{settings.max_ttl_s} (serving.auth.max_ttl_s)")
    if not settings.signing_key:
        raise AuthSetupError("no signing key: set FORGE_JWT_SECRET (HS256) or FORGE_JWT_PRIVATE_KEY (RS256)")
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + int(ttl_s), "scope": " ".join(scopes)}
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    return jwt.encode(claims, settings.signing_key, algorithm=settings.algorithm)


def _unauthorized() -> HTTPException:
    return HTTPException(status_code=401, detail="invalid or missing credentials",
                         headers={"WWW-Authenticate": "Bearer"})


def verify(settings: Settings, header: str | None) -> dict:
    """Claims of a valid bearer token; 401 (one generic body) for anything else."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        log.info("auth refused: %s", "no Authorization header" if not header else "not a Bearer token")
        raise _unauthorized()
    required = ["exp", "iat", "sub"] + (["iss"] if settings.issuer else []) + (["aud"] if settings.audience else [])
    try:
        # Algorithms pinned: 'none' and HS/RS confusion are rejected by PyJWT.
        claims = jwt.decode(token.strip(), settings.verify_key, algorithms=[settings.algorithm],
                            issuer=settings.issuer, audience=settings.audience, leeway=settings.leeway_s,
                            options={"require": required})
    except jwt.InvalidTokenError as e:
        log.info("auth refused: %s", e)
        raise _unauthorized() from None
    if claims["exp"] - claims["iat"] > settings.max_ttl_s + settings.leeway_s:
        log.info("auth refused: lifetime %s s > serving.auth.max_ttl_s", claims["exp"] - claims["iat"])
        raise _unauthorized()
    return claims


class _VerifiedTokens:
    """Claims of the tokens a replica has verified, until they expire.

    A client sends the same token with every request, and decoding it (HMAC, JSON, the claim checks) was 3.6% of
    a replica's samples under bench/serve's 100-row load (py-spy). Keyed by the whole Authorization header,
    signature included, so only a byte-identical token hits; a hit's times are checked against the clock again
    as PyJWT checks them (exp, iat, nbf, with the leeway). Bounded: the oldest entry goes first.
    """

    def __init__(self, settings: Settings, max_entries: int = 1024):
        self._settings, self._max = settings, max_entries
        self._claims: dict[str, dict] = {}

    def claims(self, header: str | None) -> dict:
        hit = self._claims.get(header) if header else None
        if hit is not None:
            now, leeway = time.time(), self._settings.leeway_s
            if hit["exp"] + leeway > now and hit["iat"] - leeway <= now and hit.get("nbf", now) - leeway <= now:
                return hit
            self._claims.pop(header, None)  # type: ignore[arg-type]
        claims = verify(self._settings, header)  # 401 for anything it refuses: nothing is kept
        if len(self._claims) >= self._max:
            self._claims.pop(next(iter(self._claims)), None)
        self._claims[header] = claims  # type: ignore[index]  # verify refused a missing header
        return claims


def require(settings: Settings, scope: str):
    """A FastAPI dependency: the request's token must carry `scope` (403 otherwise)."""
    verified = _VerifiedTokens(settings)

    # async: a sync dependency costs a hop to FastAPI's thread pool on every request, and verifying an HMAC
    # token takes microseconds, less than the hop. (It also keeps `verified` on the event loop's one thread.)
    async def dependency(request: Request) -> dict:
        if not settings.enabled:
            return {"sub": "anonymous", "scope": " ".join(SCOPES)}
        claims = verified.claims(request.headers.get("authorization"))
        if scope not in str(claims.get("scope", "")).split():
            raise HTTPException(status_code=403, detail=f"token lacks scope {scope!r}")
        return claims

    return dependency
