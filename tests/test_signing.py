"""forge/signing.py: what the training side signs, a loader verifies, and nothing else verifies."""

import os
import stat

import pandas as pd
import pytest

from forge.errors import UsageError
from forge.signing import PRIVATE, PUBLIC, SignatureError, Signer, digest, make_key_pair, signer, verifier


@pytest.fixture
def keys(tmp_path):
    folder = tmp_path / "keys"
    make_key_pair(folder)
    return folder


def test_a_signature_verifies_for_its_bytes_and_name_only(keys):
    key = signer(keys)
    sha = digest(b"the model")
    signed = key.sign("churn", sha)
    trusted = verifier(keys)
    trusted.verify("churn", sha, signed, "churn v1")  # no exception
    with pytest.raises(SignatureError, match="does not verify"):
        trusted.verify("churn", digest(b"the model, changed"), signed, "churn v1")
    with pytest.raises(SignatureError, match="does not verify"):
        trusted.verify("another", sha, signed, "another v1")  # one project's signature vouches for no other's
    with pytest.raises(SignatureError, match="unsigned"):
        trusted.verify("churn", sha, None, "churn v1")
    with pytest.raises(SignatureError, match="does not verify"):
        trusted.verify("churn", sha, "not base64 at all!", "churn v1")


def test_another_keys_signature_is_refused(keys, tmp_path):
    make_key_pair(tmp_path / "theirs")
    sha = digest(b"the model")
    theirs = signer(tmp_path / "theirs").sign("churn", sha)
    with pytest.raises(SignatureError, match=f"with key {verifier(keys).key_id}"):
        verifier(keys).verify("churn", sha, theirs, "churn v2")


def test_the_key_pair_is_made_once_owner_only_and_env_files_win(tmp_path):
    folder = tmp_path / "keys"
    first = signer(folder)  # made on first use
    assert stat.S_IMODE((folder / PRIVATE).stat().st_mode) == 0o600
    assert signer(folder).private_pem == first.private_pem and (folder / PUBLIC).exists()
    other = tmp_path / "other"
    make_key_pair(other)
    env = {"FORGE_SIGNING_KEY_FILE": str(other / PRIVATE), "FORGE_VERIFY_KEY_FILE": str(other / PUBLIC)}
    assert signer(folder, env).private_pem == (other / PRIVATE).read_bytes()
    assert verifier(folder, env).public_pem == (other / PUBLIC).read_bytes()
    os.chmod(other / PRIVATE, 0o440)  # as a Secret volume gives it: root:fsGroup, group-readable
    assert signer(folder, env).private_pem == (other / PRIVATE).read_bytes()
    os.chmod(other / PRIVATE, 0o644)
    with pytest.raises(UsageError, match="readable by anyone"):
        signer(folder, env)


def test_no_public_key_verifies_nothing(tmp_path):
    with pytest.raises(SignatureError, match="no model-signing public key"):
        verifier(tmp_path / "empty", {})
    with pytest.raises(SignatureError, match="no model-signing public key"):
        verifier(None, {})
    assert isinstance(signer(tmp_path / "k", {}), Signer)


def test_the_python_apis_saved_features_load_only_when_signed(tmp_path):
    from forge import FeatureEngineer
    from forge.config import ColumnSchema, ForgeConfig

    cfg = ForgeConfig.model_validate({"name": "p", "workspace": str(tmp_path / "ws"),
                                      "data": {"source": "x.csv", "target": "y"}})
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "c": ["u", "v", "u", "v"], "y": [0, 1, 0, 1]})
    schema = {"a": ColumnSchema(type="float"), "c": ColumnSchema(type="str"), "y": ColumnSchema(type="int")}
    path = FeatureEngineer(cfg, schema).fit(frame).save(tmp_path / "features.pkl")
    loaded = FeatureEngineer.load(cfg, path)
    assert (loaded.transform(frame) == FeatureEngineer(cfg, schema).fit(frame).transform(frame)).all()
    path.write_bytes(path.read_bytes() + b" ")  # changed after it was signed
    with pytest.raises(SignatureError, match="does not verify"):
        FeatureEngineer.load(cfg, path)
    (tmp_path / "features.pkl.sig").unlink()
    with pytest.raises(SignatureError, match="unsigned"):
        FeatureEngineer.load(cfg, path)
