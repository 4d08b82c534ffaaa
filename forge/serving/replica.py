"""One Serve replica, composed of parts with one job each.

- `ModelRouter` (router.py): registry polling, variants, the atomic swap;
- `Predictor` (predictor.py): batching and the model call;
- `PredictionLogger` (monitoring/prediction_log.py): every answered row, durable;
- `ShadowRunner` (shadow.py) and `LiveMonitor` (live.py): off the request path.

`ForgeReplica` wires them from the config it is given and answers the app's routes (app.py).
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi import HTTPException

from forge.config import ForgeConfig, TrafficConfig
from forge.monitoring.metrics import observe_many, process_metrics
from forge.monitoring.prediction_log import PredictionLogger
from forge.registry.client import Registry
from forge.serving.live import LiveMonitor
from forge.serving.predictor import Predictor
from forge.serving.router import ModelRouter
from forge.serving.schemas import unknown_in_rows
from forge.serving.shadow import ShadowRunner
from forge.training.packaging import InputOutOfRange
from forge.workspace import Workspace

CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def client_request_id(value: str | None) -> str | None:
    """A caller's own request id, kept beside the server's only when it is short and plain (422 otherwise)."""
    if value is None:
        return None
    if not CLIENT_ID.fullmatch(value):
        raise HTTPException(422, [{"loc": ["header", "x-request-id"], "type": "string_pattern_mismatch",
                                   "msg": "x-request-id must match [A-Za-z0-9._-]{1,64}"}])
    return value


def _replica_id() -> str | None:
    """Which replica answered: with several replicas, a caller can tell when all of them took a change."""
    from ray import serve

    try:
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # outside a Serve replica (unit tests build the class directly)
        return None


class ForgeReplica:
    """The state of one replica and the work behind each route."""

    def __init__(self, cfg_dict: dict, config_path: str):
        self.cfg = cfg = ForgeConfig.model_validate(cfg_dict)
        cfg.config_path = Path(config_path)
        self.metrics = process_metrics()
        registry = Registry.of(cfg)
        self.router = ModelRouter(registry, cfg.serving.traffic, self.metrics)
        self.router.refresh()
        self.predictor = Predictor(self.router.models, cfg.serving.batching)
        ws = Workspace.from_config(cfg)
        folder, wal = ws.prediction_log(cfg)
        log_cfg = cfg.monitoring.prediction_log
        self.logger = PredictionLogger(folder, log_cfg.flush_rows, log_cfg.flush_interval_s, wal_dir=wal)
        self.shadow = ShadowRunner(self.router.models, self._log, self.metrics)
        self.live = LiveMonitor(registry, cfg.monitoring.drift, self.metrics, self._champion_run)
        self.labels_folder = ws.labels(cfg.name)
        self._online = None
        self._row_checks: dict = {}  # version -> as_dicts(list[its row model])
        self._stop = threading.Event()
        # Request ids: uuid4's 32 hex digits, from a random prefix per replica and a counter. uuid4 reads the
        # kernel's random source on each call: 2% of a replica's samples under 100-row load (py-spy).
        self._id_prefix, self._ids = f"{secrets.randbits(64):016x}", itertools.count()
        threading.Thread(target=self._poll, name="forge-registry-poll", daemon=True).start()

    def reconfigure(self, user_config: dict) -> None:
        """Serve calls this on a new user_config: variants change without a restart."""
        if hasattr(self, "router"):
            self.router.configure(TrafficConfig.model_validate(user_config.get("traffic", {})))

    def _poll(self) -> None:
        while not self._stop.wait(self.cfg.serving.model_poll_s):
            try:
                self.router.refresh()
                if self._online is not None:
                    self._online.maybe_reload()
            except Exception:  # a registry hiccup must not kill the replica; the old model keeps serving
                self.metrics.errors.inc(tags={"reason": "registry_poll"})

    def _champion_run(self) -> tuple[str, str]:
        version = self.router.champion_version()
        return version, self.router.meta[version]["run_id"]

    @property
    def online(self):
        """The online feature view (None when features.online is off); built once a champion names the inputs."""
        if self._online is None and self.cfg.features.online.enabled and self.router.ready():
            from forge.serving.online import OnlineFeatures

            self._online = OnlineFeatures(self.cfg, list(self.router.models[self.router.champion_version()].inputs))
        return self._online

    def serving_version(self) -> str:
        """The champion's version; 503 (with Retry-After) while no model is loaded yet."""
        if not self.router.ready():
            raise HTTPException(503, {"status": self.router.status(), **self.router.problem()},
                                headers={"Retry-After": str(max(1, int(self.cfg.serving.model_poll_s)))})
        return self.router.champion_version()

    def typed_instances(self, instances: list[dict]) -> list[dict]:
        """Rows checked against the served champion's schema, for an app built before any champion existed
        (its request model could not carry the schema). The same strict model, the same 422 shape, plain dicts
        as the typed app's body gives (`schemas.as_dicts`)."""
        from pydantic import ValidationError

        from forge.serving.schemas import as_dicts, served_instance_model

        version = self.serving_version()
        if version not in self._row_checks:
            model = served_instance_model(self.cfg, self.router.models[version].schema)
            self._row_checks[version] = as_dicts(list[model])
        try:
            return self._row_checks[version].validate_python(instances)
        except ValidationError as e:
            raise HTTPException(422, [{"loc": ["body", "instances", *err["loc"]], "msg": err["msg"],
                                       "type": err["type"]} for err in e.errors()]) from None

    def champion_schema(self) -> dict | None:
        """The loaded champion's raw input schema (the request model and /docs); None while none is loaded."""
        return self.router.models[self.router.champion_version()].schema if self.router.ready() else None

    def readiness(self) -> tuple[bool, dict]:
        body = {"status": self.router.status(), "version": self.router.champion_version(), **self.router.problem()}
        return self.router.ready(), body

    def describe(self, full: bool) -> dict:
        """/v1/models: the served versions; `full` (admin scope) adds runs, metrics and the traffic split."""
        out = {"models": self.router.describe(full), "replica": _replica_id()}
        if full:
            out["traffic"] = self.router.traffic.model_dump()
        return out

    async def handle(self, rows: list[dict], key: str | None, client_id: str | None = None) -> dict:
        """Predict, measure, log and watch one validated request; the request id is the server's own."""
        t0 = time.perf_counter()
        request_id = f"{self._id_prefix}{next(self._ids):016x}"
        self.serving_version()
        traffic, routes, variant, version = self.router.pick(key)
        model = self.router.models[version]
        try:
            pred, proba = await self.predictor.predict(version, rows)
        except InputOutOfRange as e:  # bad input, not a fault: 422 naming the instances
            self.metrics.errors.inc(tags={"reason": "validation"})
            raise HTTPException(422, [{"loc": ["body", "instances", i], "type": "value_error",
                                       "msg": "a value is too large for the model: its scaled features overflow"}
                                      for i in e.rows]) from None
        except Exception:
            self.metrics.errors.inc(tags={"reason": "model"})
            raise
        latency = (time.perf_counter() - t0) * 1000
        scores = model.score_value(pred, proba)
        self._measure(rows, version, variant, scores, latency)
        self._log(rows, pred, scores, version, variant, request_id, latency, client_id)
        if "shadow" in routes:
            self.shadow.submit(routes["shadow"], rows, request_id)
        champion = variant == traffic.variants[0].name
        binary = model.classes is not None and len(model.classes) == 2
        self.live.observe(rows, scores if binary and champion else None)
        return {"predictions": _py(pred), "probabilities": None if proba is None else proba.tolist(),
                "model": {"name": self.cfg.name, "version": version}, "variant": variant,
                "request_id": request_id, "client_request_id": client_id}

    def _measure(self, rows: list[dict], version: str, variant: str, scores, latency: float) -> None:
        soft = self.router.meta[version]["soft_categories"]
        for col, n in unknown_in_rows(rows, soft).items():
            self.metrics.unknown_category.inc(n, tags={"feature": col})
        tags = {"model": self.cfg.name, "version": version, "variant": variant}
        self.metrics.predictions.inc(len(rows), tags=tags)
        self.metrics.latency.observe(latency)
        observe_many(self.metrics.score, np.asarray(scores, dtype="float64").tolist(), tags)

    def _log(self, rows, pred, scores, version, variant, request_id, latency, client_id=None) -> None:
        common = {"request_id": request_id, "timestamp": pd.Timestamp.now(tz="UTC").tz_localize(None),
                  "model_name": self.cfg.name, "model_version": version, "variant": variant, "latency_ms": latency}
        if client_id:
            common["client_request_id"] = client_id
        per_row = {"row": list(range(len(rows))), "prediction": _py(pred),
                   "score": np.asarray(scores, dtype="float64").tolist()}
        self.logger.log_request(rows, per_row, common)

    def accept_labels(self, labels: list[dict]) -> dict:
        from forge.monitoring.labels import write_labels

        _, n = write_labels(self.labels_folder, labels)
        return {"accepted": n}

    def close(self) -> None:
        """Stop polling and flush what is buffered (Serve's graceful shutdown calls it); a second call is a no-op."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.shadow.close()
        self.logger.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # nosec B110: interpreter shutdown may already have torn these down
            pass


def _py(values) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]
