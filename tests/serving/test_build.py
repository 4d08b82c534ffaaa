"""build_app declares the deployment only: each replica builds its routes over the champion it loads (app.py)."""

import os
import secrets
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

PROBE = textwrap.dedent("""
    import sys
    from forge.config import load_config
    from forge.serving.app import build_app

    app = build_app(load_config(sys.argv[1]))
    print(sorted(m for m in ("mlflow", "sklearn", "sqlalchemy") if m in sys.modules))
""")


def test_declaring_the_app_opens_no_registry_and_imports_no_model_stack(tmp_path):
    """`forge serve`'s own process pays Ray's start, not the registry's: before the late-bound routes it opened
    MLflow's SQLAlchemy store for the champion's schema (2.4-3.6 s of a cold start here, cProfile)."""
    (tmp_path / "forge.yaml").write_text(f"name: probe\nworkspace: {tmp_path / 'ws'}\n"
                                         "data:\n  source: x.csv\n  target: y\n")
    env = {**os.environ, "FORGE_JWT_SECRET": secrets.token_hex(32), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "forge.yaml")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert not (tmp_path / "ws" / "mlflow.db").exists()  # MLflow would have created its SQLite store
