"""forge/config.py: defaults, env overrides, paths, and errors that name the key and the file."""

import pytest

from forge.config import ConfigError, load_config
from tests.conftest import cli

MINIMAL = "name: penguins\ndata:\n  source: data/penguins.csv\n  target: species\n"


def test_smallest_config_has_every_default(tmp_path):
    p = tmp_path / "forge.yaml"
    p.write_text(MINIMAL)
    cfg = load_config(p, environ={})
    assert cfg.name == "penguins"
    assert cfg.resolve(cfg.data.source) == str(tmp_path / "data" / "penguins.csv")
    assert cfg.training.num_samples > 0 and cfg.serving.auth.enabled
    assert cfg.monitoring.drift.drift_share == 0.5


def test_unknown_key_is_named_with_the_file(tmp_path):
    p = tmp_path / "forge.yaml"
    p.write_text(MINIMAL + "training:\n  num_sample: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    assert "training.num_sample" in str(e.value) and str(p) in str(e.value) and "unknown key" in str(e.value)


def test_wrong_type_is_named(tmp_path):
    p = tmp_path / "forge.yaml"
    p.write_text(MINIMAL + "serving:\n  port: eighty\n")
    with pytest.raises(ConfigError, match="serving.port"):
        load_config(p, environ={})


def test_env_overrides_any_key(tmp_path):
    p = tmp_path / "forge.yaml"
    p.write_text(MINIMAL)
    cfg = load_config(p, environ={"FORGE_TRAINING__NUM_SAMPLES": "3", "FORGE_SERVING__AUTH__ENABLED": "false",
                                  "FORGE_WORKSPACE": "/tmp/ws", "FORGE_TRACKING_URI": "http://127.0.0.1:5000"})
    assert cfg.training.num_samples == 3 and cfg.serving.auth.enabled is False
    assert cfg.workspace == "/tmp/ws" and cfg.tracking_uri == "http://127.0.0.1:5000"


def test_env_override_with_unknown_key_fails(tmp_path):
    p = tmp_path / "forge.yaml"
    p.write_text(MINIMAL)
    with pytest.raises(ConfigError, match="training.bogus"):
        load_config(p, environ={"FORGE_TRAINING__BOGUS": "1"})


def test_cli_exits_2_naming_key_and_file(tmp_path):
    p = tmp_path / "forge.yaml"
    p.write_text(MINIMAL.replace("target", "targt"))
    r = cli("validate", "-c", str(p), "--json")
    assert r.returncode == 2
    assert "data.targt" in r.stderr and str(p) in r.stderr


def test_cli_missing_config_exits_2(tmp_path):
    r = cli("validate", "-c", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "not found" in r.stderr
