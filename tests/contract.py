"""The `--json` contract of shared/DESIGN.md ("`--json` keys (at least)"): every test that reads a command's JSON
goes through `cli_json`, so a renamed or dropped key fails where the command runs for real."""

import json

VALIDATE = {"data_version", "rows_in", "rows_valid", "rows_quarantined", "report_path", "quarantine_path"}
TRAIN = {"run_id", "model_name", "model_version", "metric", "baseline_metric", "promoted"}
CONTRACT: dict[str, set[str]] = {
    "init": {"config_path"},
    "validate": VALIDATE,
    "train": TRAIN,
    "run": VALIDATE | TRAIN,
    "serve": {"url"},
    "token create": {"token"},
    "predict": {"rows", "output_path"},
    "drift": {"dataset_drift", "drift_share", "features"},
    "retrain": {"triggered", "reason", "model_version", "promoted"},
    "retrain --schedule": {"schedule", "runs"},
    "labels add": {"labels", "path"},
    "labels report": {"metric", "live_value", "test_value", "rows", "decayed"},
}
FEATURE = {"test", "statistic", "p_value", "threshold", "drifted"}


def check(command: str, out: dict) -> dict:
    missing = CONTRACT[command] - set(out)
    assert not missing, f"`forge {command} --json` lacks {sorted(missing)} (DESIGN.md contract): {sorted(out)}"
    if command in ("train", "run"):
        assert set(out["metric"]) >= {"name", "value"}, out["metric"]
    if command == "drift":
        for name, f in out["features"].items():
            assert FEATURE <= set(f), (name, sorted(f))
    return out


def cli_json(result, command: str) -> dict:
    """The last JSON line of a finished `forge` (or job) process, held to the contract of `command`."""
    line = [x for x in result.stdout.splitlines() if x.startswith("{")][-1]
    return check(command, json.loads(line))
