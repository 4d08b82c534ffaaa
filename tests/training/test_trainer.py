"""forge/training/trainer.py: Tune's ASHA scheduler stops weak MLP trials early; the strong ones run on."""

import pandas as pd
import pytest

from forge.data.versioning import get_version
from forge.pipelines.pipeline import schema_of
from forge.training.trainer import prepare, search
from forge.workspace import Workspace

pytestmark = pytest.mark.integration


# It took 119 s and 580 s in two full runs an hour apart, when it ran last, beside the session's Serve app (which
# then reserved one of the two CPUs); it now runs before any app is served.
@pytest.mark.timeout(900)
def test_asha_stops_weak_mlp_trials_early(trained_project, tmp_path):
    cfg, _ = trained_project
    c = cfg.model_copy(deep=True)
    c.config_path = cfg.config_path
    # learning rates from far too small to learn in a few epochs to large: ASHA should cut the weak at its rung
    c.training.models = {"mlp": {"hidden": 16, "layers": 1, "batch_size": 64, "lr": [1e-5, 3e-2]}}
    c.training.num_samples, c.training.max_epochs, c.training.max_concurrent = 6, 6, 2
    dv = get_version(Workspace.from_config(c), c.name)
    td = prepare(c, pd.read_parquet(dv.snapshot), schema_of(dv))
    grid = search(c, td, tmp_path)
    assert not grid.errors, grid.errors
    ran = sorted(r.metrics["training_iteration"] for r in grid)
    assert len(ran) == 6 and ran[-1] == 6, ran  # the strong trials run to max_epochs ...
    assert ran[0] == 2, ran  # ... and ASHA stopped the weak at its first rung (grace_period 2)
    assert sum(ran) < 6 * 6  # compute saved against running every trial to the end
