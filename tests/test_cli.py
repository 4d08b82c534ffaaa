"""forge/cli.py: `forge init` infers a schema a user can read and edit, and `forge validate` runs on it as written."""

import pytest
import yaml

from forge.data.synthetic import generate
from tests.conftest import cli, free_port, run_cli
from tests.contract import cli_json


@pytest.mark.integration
def test_init_writes_a_config_with_the_inferred_schema_then_validate_uses_it(ray_session, tmp_path):
    generate(800, seed=3).to_csv(tmp_path / "events.csv", index=False)
    # A CSV is read in process, with no Ray to start or join: pointed at a cluster that is not there, a command
    # that reached for Ray would fail.
    nowhere = {"RAY_ADDRESS": f"127.0.0.1:{free_port()}"}
    r = run_cli("init", "events.csv", "--target", "churned", "--json", cwd=tmp_path, env=nowhere)
    assert r.returncode == 0, r.stderr
    assert cli_json(r, "init")["config_path"] == str(tmp_path / "forge.yaml")
    cfg = yaml.safe_load((tmp_path / "forge.yaml").read_text())
    schema = cfg["data"]["schema"]
    assert cfg["data"]["source"] == "events.csv" and cfg["name"] == "events"
    assert schema["churned"] == {"type": "int", "nullable": False}  # observed, not a rule: no inferred floor
    assert schema["event_time"]["type"] == "datetime" and schema["usage_hours"]["nullable"] is True
    assert schema["plan"]["categories"] == sorted(set(generate(800, seed=3)["plan"])) and "allowed" not in schema["plan"]
    assert cli_json(r, "init")["rows_read"] == 800 and "read every one of 800 rows" in r.stderr

    r = run_cli("validate", "-c", "forge.yaml", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = cli_json(r, "validate")
    assert out["rows_in"] == 800 == out["rows_valid"] + out["rows_quarantined"]
    # The command's own cluster is gone: the machine's current cluster is this session's again (Ray Train's
    # placement-group cleaner finds its cluster there; left stale, ASHA-stopped MLP trials hung the suite).
    from ray._private.utils import read_ray_address

    assert read_ray_address() == ray_session.get_runtime_context().gcs_address


def test_init_with_unknown_target_names_the_option(tmp_path):
    generate(50, seed=1).to_csv(tmp_path / "events.csv", index=False)
    r = cli("init", "events.csv", "--target", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "--target" in r.stderr and "nope" in r.stderr
    assert not (tmp_path / "forge.yaml").exists()


def test_rows_progress_draws_a_live_count_then_goes(monkeypatch):
    import io

    from rich.console import Console

    from forge.cli import _common as cli

    out = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=out, force_terminal=True, width=120))
    with cli.rows_progress("validate") as progress:
        progress(1_000)
        progress(250_000)
        progress(None)  # the step is over: what prints next is not drawn over
    text = out.getvalue()
    assert "forge validate: 250,000 rows" in text and "rows/s" in text
