"""forge/serving/online.py: a request that carries only the entity id gets its features from the store."""

import json

import httpx
import pandas as pd
import pytest

from forge.config import ForgeConfig
from forge.features.store import FeatureStore
from forge.serving.online import MissingFeatures, OnlineFeatures
from forge.workspace import Workspace


def _cfg(tmp_path) -> ForgeConfig:
    cfg = ForgeConfig.model_validate({"name": "m", "workspace": str(tmp_path / "ws"),
                                      "data": {"source": "x.csv", "target": "y", "entity": "id", "timestamp": "t"},
                                      "features": {"online": {"enabled": True}}})
    return cfg


def test_fill_takes_latest_values_and_request_values_win(tmp_path):
    cfg = _cfg(tmp_path)
    store = FeatureStore(Workspace.from_config(cfg).features())
    store.write_table("m", pd.DataFrame({"id": [1, 1, 2], "t": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-05"]),
                                         "a": [1.0, 2.0, 5.0], "b": ["x", "y", "z"]}), "id", "t")
    online = OnlineFeatures(cfg, ["a", "b"])
    assert online.fill([{"id": 1}, {"id": "2", "a": 9.0}]) == [{"id": 1, "a": 2.0, "b": "y"},
                                                                {"id": "2", "a": 9.0, "b": "z"}]
    with pytest.raises(MissingFeatures) as e:
        online.fill([{"id": 1}, {"id": 3, "a": 1.0}])
    assert [d["loc"] for d in e.value.detail] == [["body", "instances", 1, "b"]]  # only what is truly missing
    assert online.fill([{"id": 3, "a": 1.0, "b": "q"}]) == [{"id": 3, "a": 1.0, "b": "q"}]  # full rows need no store

    store.write_table("m", pd.DataFrame({"id": [3], "t": pd.to_datetime(["2024-03-01"]), "a": [7.0], "b": ["w"]}),
                      "id", "t")
    import os
    import time

    later = time.time() + 5  # a rewrite within the same mtime tick must still be seen
    os.utime(store.root / "m" / "meta.json", (later, later))
    assert online.maybe_reload() and online.fill([{"id": 3}]) == [{"id": 3, "a": 7.0, "b": "w"}]
    assert not online.maybe_reload()


def test_online_needs_an_entity_column():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="data.entity"):
        ForgeConfig.model_validate({"name": "m", "data": {"source": "x", "target": "y"},
                                    "features": {"online": {"enabled": True}}})


@pytest.mark.integration
def test_entity_only_requests_over_http(served, auth_headers):
    from ray import serve

    from forge.serving.app import build_app
    from tests.serving.test_app import _rows

    cfg, url = served
    app_cfg = cfg.model_copy(deep=True)
    app_cfg.config_path = cfg.config_path
    app_cfg.features.online.enabled = True
    serve.run(build_app(app_cfg), name="online", route_prefix="/online", blocking=False)
    try:
        store = FeatureStore(Workspace.from_config(cfg).features())
        # written by the pipeline from the training data version
        table = pd.concat([pd.read_parquet(p) for p in (store.root / cfg.name).glob("bucket-*.parquet")])
        latest = table.sort_values("event_time").groupby("customer_id").tail(1).set_index("customer_id")
        ids = latest.index[:3].tolist()
        cols = list(_rows(cfg, 1)[0])
        full = [{"customer_id": int(i), **row}
                for i, row in zip(ids, json.loads(latest.loc[ids, cols].to_json(orient="records")))]
        h = auth_headers()

        def predict(instances):
            return httpx.post(f"{url}/online/v1/predict", json={"instances": instances}, headers=h, timeout=30)

        by_id = predict([{"customer_id": int(i)} for i in ids])
        assert by_id.status_code == 200, by_id.text
        assert by_id.json()["probabilities"] == predict(full).json()["probabilities"]
        override = predict([{"customer_id": int(ids[0]), "support_tickets": 40}])
        assert override.json()["probabilities"] == predict([{**full[0], "support_tickets": 40}]).json()["probabilities"]

        unknown = predict([{"customer_id": -5}])
        assert unknown.status_code == 422 and {d["loc"][-1] for d in unknown.json()["detail"]} == set(cols)
        no_id = predict([{k: v for k, v in full[0].items() if k != "customer_id"}])
        assert no_id.status_code == 422 and no_id.json()["detail"][0]["loc"][-1] == "customer_id"
    finally:
        serve.delete("online")
