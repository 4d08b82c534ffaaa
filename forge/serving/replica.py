"""What one Serve replica does: load and swap models, route, predict, batch, log, measure."""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from ray import serve

from forge.config import ForgeConfig, TrafficConfig
from forge.monitoring.metrics import ForgeMetrics
from forge.monitoring.prediction_log import PredictionLogger
from forge.serving.routing import assign
from forge.serving.schemas import soft_categories, unknown_categories
from forge.storage import as_location
from forge.training.packaging import InputOutOfRange
from forge.workspace import Workspace, tracking_uri

TRAFFIC_TAG = "forge.traffic"
CURRENT: ForgeReplica | None = None  # the replica of this process, for the app's exception handlers


def _client(cfg: ForgeConfig):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(cfg))
    mlflow.set_registry_uri(tracking_uri(cfg))
    return MlflowClient()


def resolve(client, name: str, ref: str) -> str:
    """A registry alias or version number -> version number."""
    if str(ref).isdigit():
        return str(ref)
    return str(client.get_model_version_by_alias(name, ref).version)


def set_traffic(cfg: ForgeConfig, traffic: TrafficConfig | None) -> None:
    """Change the variants of every running replica (picked up on their next registry poll); None resets."""
    client = _client(cfg)
    if traffic is None:
        client.delete_registered_model_tag(cfg.name, TRAFFIC_TAG)
    else:
        for ref in [v.model for v in traffic.variants] + ([traffic.shadow] if traffic.shadow else []):
            resolve(client, cfg.name, ref)  # fail here, not in the replicas, on a bad alias
        client.set_registered_model_tag(cfg.name, TRAFFIC_TAG, traffic.model_dump_json())


def load_input_schema(cfg: ForgeConfig) -> dict:
    """The champion's raw input schema (drives the request model)."""
    from mlflow.exceptions import MlflowException

    from forge.training.packaging import load_forge_model

    client = _client(cfg)
    try:
        version = resolve(client, cfg.name, "champion")
    except MlflowException:
        raise RuntimeError(f"model {cfg.name!r} has no @champion yet: run `forge run` first") from None
    return load_forge_model(f"models:/{cfg.name}/{version}").schema


def _replica_id() -> str | None:
    """Which replica answered: with several replicas, a caller can tell when all of them took a change."""
    try:
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # outside a Serve replica (unit tests build the class directly)
        return None


class ForgeReplica:
    def __init__(self, cfg_dict: dict, config_path: str):
        self.cfg = ForgeConfig.model_validate(cfg_dict)
        self.cfg.config_path = Path(config_path)
        self.client = _client(self.cfg)
        self.metrics = ForgeMetrics()
        log_cfg = self.cfg.monitoring.prediction_log
        ws = Workspace.from_config(self.cfg)
        folder = as_location(self.cfg.resolve(log_cfg.path)) if log_cfg.path else ws.predictions(self.cfg.name)
        # Object stores have no append and no lock: the write-ahead segments stay on this node's disk.
        wal = None if folder.is_local else ws.local_dir("wal", self.cfg.name)
        self.logger = PredictionLogger(folder, log_cfg.flush_rows, log_cfg.flush_interval_s, wal_dir=wal)
        self.models: dict[str, object] = {}
        self.meta: dict[str, dict] = {}
        self._configured_traffic = self.cfg.serving.traffic
        self.state: tuple[TrafficConfig, dict[str, str]] = (self._configured_traffic, {})
        self._lock = threading.Lock()
        self._shadow_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="forge-shadow")
        self._shadow_pending = 0
        self._window: collections.deque = collections.deque(maxlen=self.cfg.monitoring.drift.window_rows)
        self._scores: collections.deque = collections.deque(maxlen=self.cfg.monitoring.drift.window_rows)
        self._since_drift = 0
        self._last_drift = float("-inf")
        self._drift_busy = threading.Lock()
        self._reference = None
        b = self.cfg.serving.batching
        self._batched.set_max_batch_size(b.max_batch_size)
        self._batched.set_batch_wait_timeout_s(b.batch_wait_timeout_s)
        self._stop = threading.Event()
        self.refresh()
        self.online = None
        if self.cfg.features.online.enabled:
            from forge.serving.online import OnlineFeatures

            self.online = OnlineFeatures(self.cfg, list(self.models[self.champion_version()].inputs))
        global CURRENT
        CURRENT = self
        threading.Thread(target=self._poll, name="forge-registry-poll", daemon=True).start()

    # ---- models -------------------------------------------------------------------------------
    @property
    def traffic(self) -> TrafficConfig:
        return self.state[0]

    @property
    def routes(self) -> dict[str, str]:
        return self.state[1]

    def reconfigure(self, user_config: dict) -> None:
        """Serve calls this on a new user_config: variants change without a restart."""
        self._configured_traffic = TrafficConfig.model_validate(user_config.get("traffic", {}))
        if hasattr(self, "models"):
            self.refresh()

    def _load(self, version: str):
        from forge.training.packaging import load_forge_model

        if version not in self.models:
            mv = self.client.get_model_version(self.cfg.name, version)
            run = self.client.get_run(mv.run_id)
            self.models[version] = load_forge_model(f"models:/{self.cfg.name}/{version}")
            self.meta[version] = {"run_id": mv.run_id, "data_version": mv.tags.get("forge.data_version"),
                                  "metrics": run.data.metrics, "aliases": list(mv.aliases),
                                  "soft_categories": soft_categories(self.models[version].schema)}
        return self.models[version]

    def refresh(self) -> None:
        """Resolve every variant's alias; load new versions before switching routes (zero downtime)."""
        override = self.client.get_registered_model(self.cfg.name).tags.get(TRAFFIC_TAG)
        # `forge ab set` changes the variants on the running app; until the new models are loaded,
        # requests keep the old (traffic, routes) pair — the two always switch together.
        traffic = TrafficConfig.model_validate_json(override) if override else self._configured_traffic
        refs = {v.name: v.model for v in traffic.variants}
        if traffic.shadow:
            refs["shadow"] = traffic.shadow
        routes = {name: resolve(self.client, self.cfg.name, ref) for name, ref in refs.items()}
        for version in set(routes.values()):
            self._load(version)
        old = set(self.routes.values())
        self.state = (traffic, routes)  # one assignment: requests see the old or the new pair, never a mix
        for version in old - set(routes.values()):
            self.metrics.model_info.set(0, tags={"model": self.cfg.name, "version": version})
        for version in set(routes.values()):
            self.metrics.model_info.set(1, tags={"model": self.cfg.name, "version": version})

    def _poll(self) -> None:
        while not self._stop.wait(self.cfg.serving.model_poll_s):
            try:
                self.refresh()
                if self.online is not None:
                    self.online.maybe_reload()
            except Exception:  # a registry hiccup must not kill the replica; the old model keeps serving
                self.metrics.errors.inc(tags={"reason": "registry_poll"})

    def ready(self) -> bool:
        return bool(self.routes) and all(v in self.models for v in self.routes.values())

    def champion_version(self) -> str | None:
        return self.routes.get(self.traffic.variants[0].name)

    def describe(self) -> dict:
        out = []
        for variant, version in self.routes.items():
            model, meta = self.models[version], self.meta[version]
            out.append({"name": self.cfg.name, "version": version, "variant": variant, "alias": meta["aliases"],
                        "run_id": meta["run_id"], "data_version": meta["data_version"], "metrics": meta["metrics"],
                        "task": model.task, "classes": model.classes, "input_schema": model.schema})
        return {"models": out, "traffic": self.traffic.model_dump(), "replica": _replica_id()}

    # ---- predictions --------------------------------------------------------------------------
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _batched(self, items: list[tuple[str, pd.DataFrame]]) -> list:
        """One prediction per item; an item whose row the model refuses gets the exception, the others their
        answers (one caller's bad row must not fail the requests it was batched with)."""
        out: list = [None] * len(items)
        for version in {v for v, _ in items}:
            idx = [i for i, (v, _) in enumerate(items) if v == version]
            frame = pd.concat([items[i][1] for i in idx], ignore_index=True)
            try:
                pred, proba = self.models[version].predict_raw(frame)
            except InputOutOfRange:
                for i in idx:
                    try:
                        out[i] = self.models[version].predict_raw(items[i][1])
                    except InputOutOfRange as e:
                        out[i] = e
                continue
            for j, i in enumerate(idx):
                out[i] = (pred[j : j + 1], None if proba is None else proba[j : j + 1])
        return out

    async def handle(self, rows: list[dict], key: str | None, request_id: str) -> dict:
        t0 = time.perf_counter()
        traffic, routes = self.state  # one consistent snapshot for the whole request
        variant = assign(traffic.variants, traffic.experiment_id, key)
        version = routes[variant.name]
        model = self.models[version]
        frame = pd.DataFrame.from_records(rows, columns=model.inputs)
        try:
            if len(rows) == 1 and self.cfg.serving.batching.enabled:
                result = await self._batched((version, frame))
                if isinstance(result, Exception):
                    raise result
                pred, proba = result
            else:
                pred, proba = model.predict_raw(frame)
        except InputOutOfRange as e:  # bad input, not a fault: 422 naming the instances
            from fastapi import HTTPException

            self.metrics.errors.inc(tags={"reason": "validation"})
            raise HTTPException(422, [{"loc": ["body", "instances", i], "type": "value_error",
                                       "msg": "a value is too large for the model: its scaled features overflow"}
                                      for i in e.rows]) from None
        except Exception:
            self.metrics.errors.inc(tags={"reason": "model"})
            raise
        latency = (time.perf_counter() - t0) * 1000
        for col, n in unknown_categories(frame, self.meta[version]["soft_categories"]).items():
            self.metrics.unknown_category.inc(n, tags={"feature": col})
        scores = model.score_value(pred, proba)
        tags = {"model": self.cfg.name, "version": version, "variant": variant.name}
        self.metrics.predictions.inc(len(rows), tags=tags)
        self.metrics.latency.observe(latency)
        for s in scores:
            self.metrics.score.observe(float(s), tags=tags)
        self._log(rows, pred, scores, version, variant.name, request_id, latency)
        if "shadow" in routes:
            self._shadow(routes["shadow"], frame, rows, request_id)
        binary = model.classes is not None and len(model.classes) == 2
        self._observe_window(rows, scores if binary and variant.name == traffic.variants[0].name else None)
        return {"predictions": _py(pred), "probabilities": None if proba is None else proba.tolist(),
                "model": {"name": self.cfg.name, "version": version}, "variant": variant.name,
                "request_id": request_id}

    def _log(self, rows, pred, scores, version, variant, request_id, latency) -> None:
        now = pd.Timestamp.now(tz="UTC").tz_localize(None)
        self.logger.log([{**row, "request_id": request_id, "row": i, "timestamp": now, "model_name": self.cfg.name,
                          "model_version": version, "variant": variant, "prediction": _py(pred[i : i + 1])[0],
                          "score": float(scores[i]), "latency_ms": latency} for i, row in enumerate(rows)])

    def _shadow(self, version: str, frame: pd.DataFrame, rows: list[dict], request_id: str) -> None:
        """A copy of the request for the shadow model, on its own thread: never awaited, never returned."""
        if self._shadow_pending > 100:  # a slow shadow sheds its copies instead of queueing without bound
            self.metrics.errors.inc(tags={"reason": "shadow_dropped"})
            return
        self._shadow_pending += 1

        def run():
            try:
                t0 = time.perf_counter()
                model = self.models[version]
                pred, proba = model.predict_raw(frame)
                self._log(rows, pred, model.score_value(pred, proba), version, "shadow", request_id,
                          (time.perf_counter() - t0) * 1000)
            except Exception:
                self.metrics.errors.inc(tags={"reason": "shadow"})
            finally:
                self._shadow_pending -= 1

        self._shadow_pool.submit(run)

    # ---- drift on the live window -------------------------------------------------------------
    def _observe_window(self, rows: list[dict], scores=None) -> None:
        self._window.extend(rows)
        if scores is not None:
            self._scores.extend(float(x) for x in scores)
        self._since_drift += len(rows)
        due = time.monotonic() - self._last_drift >= self.cfg.monitoring.drift.live_interval_s
        if due and self._since_drift >= max(50, self._window.maxlen // 2) and self._drift_busy.acquire(blocking=False):
            self._since_drift = 0
            self._last_drift = time.monotonic()
            threading.Thread(target=self._drift, daemon=True).start()

    def _drift(self) -> None:
        from forge.monitoring.drift import detect
        from forge.monitoring.reference import load_reference

        try:
            run_id = self.meta[self.champion_version()]["run_id"]
            if self._reference is None or self._reference[0] != run_id:  # downloaded once per champion
                self._reference = (run_id, *load_reference(self.client, run_id))
            _, ref, stats = self._reference
            numeric = [c for c, s in stats.items() if s["type"] == "numeric"]
            categorical = [c for c, s in stats.items() if s["type"] == "categorical"]
            n_ref = max(s["count"] + s["nulls"] for s in stats.values())
            res = detect(ref, pd.DataFrame(list(self._window)), numeric, categorical, self.cfg.monitoring.drift, n_ref)
            for name, f in res["features"].items():
                if f["statistic"] is not None:
                    self.metrics.feature_drift.set(f["statistic"], tags={"feature": name})
            self.metrics.drift_share.set(res["drift_share"])
            if len(self._scores) >= 50:  # the champion's positive-class probabilities (binary models only)
                from forge.monitoring.performance import estimate

                est = estimate(np.array(self._scores))
                for metric in ("accuracy", "roc_auc"):
                    if np.isfinite(est[metric]):
                        self.metrics.estimated_performance.set(est[metric], tags={
                            "model": self.cfg.name, "version": self.champion_version(), "metric": metric})
        except Exception:
            self.metrics.errors.inc(tags={"reason": "drift"})
        finally:
            self._drift_busy.release()

    # ---- labels and the Open Inference Protocol -----------------------------------------------
    def accept_labels(self, body: dict) -> dict:
        from forge.monitoring.labels import write_labels

        path, n = write_labels(Workspace.from_config(self.cfg).labels(self.cfg.name), body.get("labels", []))
        return {"accepted": n, "path": str(path)}

    async def open_inference(self, model_name: str, body: dict) -> dict:
        from fastapi import HTTPException

        if model_name != self.cfg.name:
            raise HTTPException(404, f"unknown model {model_name!r}")
        try:
            cols = {i["name"]: i["data"] for i in body["inputs"]}
            n = len(next(iter(cols.values())))
            rows = [{c: v[i] for c, v in cols.items()} for i in range(n)]
        except (KeyError, TypeError, StopIteration):
            raise HTTPException(422, "expected {'inputs': [{'name', 'shape', 'datatype', 'data'}, ...]}") from None
        version = self.champion_version()
        try:
            rows = [self._instance.model_validate(r).model_dump() for r in rows] if self._instance else rows
        except Exception as e:
            raise HTTPException(422, str(e)) from None
        out = await self.handle(rows, None, str(body.get("id") or uuid.uuid4().hex))
        pred = out["predictions"]
        return {"model_name": model_name, "model_version": version, "id": out["request_id"],
                "outputs": [{"name": "predictions", "shape": [len(pred)],
                             "datatype": "FP64" if pred and isinstance(pred[0], float) else "INT64"
                             if pred and isinstance(pred[0], int) else "BYTES", "data": pred}]}

    _instance = None

    def __del__(self):
        # Serve calls __del__ on graceful shutdown: flush what is buffered so nothing is lost.
        try:
            self._stop.set()
            self._shadow_pool.shutdown(wait=True, cancel_futures=False)
            self.logger.close()
        except Exception:
            pass


def _py(values) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]
