"""Model signatures: the training side signs what it registers, and every loader verifies before it unpickles.

What is signed is the SHA-256 digest of the pickled artifact's bytes, bound to the model's name (a signature of one
project's model does not vouch for another's). The key is Ed25519 (`cryptography`). Only the training side holds
the private key; Serve replicas, batch jobs and drift checks hold the public key. A version that is unsigned,
signed with another key, or whose bytes are not the ones signed, is refused before anything is unpickled.

Keys: FORGE_SIGNING_KEY_FILE (private, PEM) where models are registered, FORGE_VERIFY_KEY_FILE (public, PEM) where
they are loaded; on Kubernetes each comes from its own Secret (kuberay/). On a machine with neither, `forge` makes
a key pair on first use in a node-local folder the caller names (the workspace's keys/), the private key readable
by its owner only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from forge.errors import ModelLoadError, UsageError

PRIVATE, PUBLIC = "model-signing.key", "model-signing.pub"
SIGNING_ENV, VERIFY_ENV = "FORGE_SIGNING_KEY_FILE", "FORGE_VERIFY_KEY_FILE"


class SignatureError(ModelLoadError):
    """An artifact that is unsigned, signed with another key, or not the bytes that were signed."""


def digest(data: bytes) -> str:
    """Hex SHA-256 of the bytes a loader is about to unpickle (never of a file read apart from them)."""
    return hashlib.sha256(data).hexdigest()


def _message(name: str, sha256: str) -> bytes:
    return f"forge-model-v1\n{name}\n{sha256}".encode()


def key_id(public_raw: bytes) -> str:
    """A short name of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class Verifier:
    """A public key: checks that `name`'s artifact with this digest was signed by the training side."""

    public_pem: bytes

    @property
    def key_id(self) -> str:
        return key_id(self._key().public_bytes_raw())

    def _key(self):
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        return load_pem_public_key(self.public_pem)

    def verify(self, name: str, sha256: str, signature: str | None, what: str) -> None:
        """Raise SignatureError unless `signature` (base64) signs `sha256` of `name` with this key."""
        from cryptography.exceptions import InvalidSignature

        if not signature:
            raise SignatureError(f"{what}: unsigned; Forge loads only models its training side signed "
                                 f"(this loader trusts key {self.key_id})")
        try:
            self._key().verify(base64.b64decode(signature, validate=True), _message(name, sha256))
        except (InvalidSignature, ValueError):
            raise SignatureError(f"{what}: the signature does not verify with key {self.key_id}: signed with "
                                 "another key, or not these bytes; refusing to unpickle it") from None


@dataclass(frozen=True)
class Signer:
    """The private key of the training side."""

    private_pem: bytes

    def _key(self):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return load_pem_private_key(self.private_pem, password=None)

    def sign(self, name: str, sha256: str) -> str:
        return base64.b64encode(self._key().sign(_message(name, sha256))).decode()

    @property
    def verifier(self) -> Verifier:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return Verifier(self._key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))


def _read(path: Path, what: str, private: bool) -> bytes:
    try:
        # Group-readable is how a Kubernetes Secret volume gives a non-root container its file (root:fsGroup,
        # 0440); readable by anyone on the machine is refused.
        if private and stat.S_IMODE(path.stat().st_mode) & 0o007:
            raise UsageError(f"{what}: {path} is readable by anyone: `chmod 600 {path}`")
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"{what}: cannot read {path}: {e}") from None


def make_key_pair(folder: Path) -> None:
    """A new key pair in `folder`: the private key created owner-only, never readable by others for a moment."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    key = Ed25519PrivateKey.generate()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / PRIVATE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another command made it first
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    (folder / PUBLIC).write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))


def signer(folder: Path | None, environ: dict | None = None) -> Signer:
    """The training side's key: FORGE_SIGNING_KEY_FILE, else the pair in `folder` (made there on first use)."""
    env = os.environ if environ is None else environ
    if env.get(SIGNING_ENV):
        return Signer(_read(Path(env[SIGNING_ENV]), SIGNING_ENV, private=True))
    if folder is None:
        raise UsageError(f"{SIGNING_ENV} is not set: no key to sign the model with")
    if not (folder / PRIVATE).exists():
        make_key_pair(folder)
    return Signer(_read(folder / PRIVATE, "the model-signing key", private=True))


def verifier(folder: Path | None, environ: dict | None = None) -> Verifier:
    """A loader's key: FORGE_VERIFY_KEY_FILE, else the public key in `folder`.

    Raises:
        SignatureError: no public key anywhere (nothing can be verified, so nothing is loaded).
    """
    env = os.environ if environ is None else environ
    if env.get(VERIFY_ENV):
        return Verifier(_read(Path(env[VERIFY_ENV]), VERIFY_ENV, private=False))
    if folder is not None and (folder / PUBLIC).exists():
        return Verifier(_read(folder / PUBLIC, "the model-signing public key", private=False))
    where = f" or {folder / PUBLIC}" if folder is not None else ""
    raise SignatureError(f"no model-signing public key ({VERIFY_ENV}{where}): nothing can be verified, so "
                         "nothing is loaded")
