"""forge/api.py: the public API, exercised by the example script that uses nothing else."""

import importlib.util
import sys

import pytest

from tests.conftest import ROOT, write_project

pytestmark = pytest.mark.integration


def test_import_forge_starts_nothing_heavy():
    import subprocess

    code = "import sys, forge; forge.DataValidator; print(any(m in sys.modules for m in ('ray', 'mlflow', 'torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_example_script_runs_on_the_public_api(ray_session, tmp_path):
    path = write_project(tmp_path / "proj", rows=800, seed=21,
                         training={"num_samples": 2, "models": ["logistic_regression"]})
    spec = importlib.util.spec_from_file_location("python_api", ROOT / "examples" / "python_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = (ROOT / "examples" / "python_api.py").read_text()
    assert "from forge import " in source and "from forge." not in source and "import forge." not in source
    out = module.main(str(path))
    assert out["validation"]["rows_in"] == 800 and out["pipeline"]["promoted"]
    assert out["n_features"] > 8 and out["drift_share"] == 0.0
