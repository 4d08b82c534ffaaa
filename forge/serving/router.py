"""Which model answers a request: registry polling, A/B variants, and the atomic swap.

New versions are loaded before the routes switch, and the (traffic, routes) pair is replaced in one assignment,
so a request sees the old pair or the new one, never a mix. A version that fails to load (missing artifact, bad
SHA-256, unpickling error) leaves the current routes serving; the failure is counted, logged and shown by
`/readyz`.
"""

from __future__ import annotations

import logging
import threading

from forge.config import TrafficConfig
from forge.errors import ModelLoadError, NotFoundError
from forge.registry.client import Registry
from forge.serving.routing import assign
from forge.serving.schemas import soft_categories

log = logging.getLogger("forge.serving")


class ModelRouter:
    """The replica's loaded versions and the variants that point at them."""

    def __init__(self, registry: Registry, traffic: TrafficConfig, metrics):
        self.registry = registry
        self.metrics = metrics
        self.models: dict[str, object] = {}
        self.meta: dict[str, dict] = {}
        # The last failed load (its text, and the version that failed) until a refresh succeeds; the text goes to
        # the replica's log, only the version and the fact to /readyz (the text can name paths and hosts).
        self.load_error: str | None = None
        self.failed_version: str | None = None
        self._loading: str | None = None
        self._configured = traffic
        self._lock = threading.Lock()  # the poller and Serve's reconfigure may refresh at once
        self.state: tuple[TrafficConfig, dict[str, str]] = (traffic, {})

    @property
    def traffic(self) -> TrafficConfig:
        return self.state[0]

    @property
    def routes(self) -> dict[str, str]:
        return self.state[1]

    def configure(self, traffic: TrafficConfig) -> None:
        """forge.yaml's variants changed (Serve's user_config); a `forge ab set` override still wins."""
        self._configured = traffic
        self.refresh()

    def refresh(self) -> None:
        """Resolve every variant; load new versions first, then switch. A load failure keeps the old routes.

        No champion yet is not an error: the replica starts, answers 503 and keeps polling, so a RayService
        deployed before the first training comes up instead of failing its build.

        Raises:
            ModelLoadError: only while nothing is served yet (a replica that cannot serve must not start).
        """
        with self._lock:
            try:
                self._refresh()
                self.load_error = self.failed_version = None
            except NotFoundError as e:
                self.load_error, self.failed_version = str(e), None
                if not self.routes:
                    log.warning("forge: waiting for a model: %s", e)
            except ModelLoadError as e:
                self.load_error, self.failed_version = str(e), self._loading
                self.metrics.errors.inc(tags={"reason": "model_load"})
                log.error("forge: keeping the current model: %s", e)
                if not self.routes:
                    raise

    def _refresh(self) -> None:
        traffic = self.registry.traffic() or self._configured
        refs = {v.name: v.model for v in traffic.variants}
        if traffic.shadow:
            refs["shadow"] = traffic.shadow
        routes = {name: self.registry.require(ref) for name, ref in refs.items()}
        for version in set(routes.values()) - set(self.models):
            self._load(version)
        old = set(self.routes.values())
        self.state = (traffic, routes)  # one assignment: the swap
        name = self.registry.name
        for version in old - set(routes.values()):
            self.metrics.model_info.set(0, tags={"model": name, "version": version})
        for version in set(routes.values()):
            self.metrics.model_info.set(1, tags={"model": name, "version": version})

    def _load(self, version: str) -> None:
        self._loading = version
        model = self.registry.load(version)
        mv = self.registry.model_version(version)
        run = self.registry.run(mv.run_id)
        self.meta[version] = {"run_id": mv.run_id, "data_version": mv.tags.get("forge.data_version"),
                              "metrics": run.data.metrics, "aliases": list(mv.aliases),
                              "soft_categories": soft_categories(model.schema)}
        self.models[version] = model

    def ready(self) -> bool:
        return bool(self.routes) and all(v in self.models for v in self.routes.values())

    def champion_version(self) -> str | None:
        return self.routes.get(self.traffic.variants[0].name)

    def problem(self) -> dict:
        """What /readyz and a 503 say of a failed load: that it failed and which version, never its text."""
        return {"load_error": True, "failed_version": self.failed_version} if self.failed_version else {}

    def status(self) -> str:
        """ready, waiting_for_model (no champion registered yet) or loading."""
        return "ready" if self.ready() else "waiting_for_model" if not self.routes else "loading"

    def assignment_key(self, headers, rows: list[dict]) -> str | None:
        """The A/B key of a request: the configured header, else the configured field of its first row."""
        traffic = self.traffic
        key = headers.get(traffic.key_header)
        if key is None and traffic.key_field and traffic.key_field in rows[0]:
            key = str(rows[0][traffic.key_field])
        return key

    def pick(self, key: str | None) -> tuple[TrafficConfig, dict[str, str], str, str]:
        """(traffic, routes, variant, version) for one request, from one consistent snapshot."""
        traffic, routes = self.state
        variant = assign(traffic.variants, traffic.experiment_id, key).name
        return traffic, routes, variant, routes[variant]

    def describe(self, full: bool) -> list[dict]:
        """The served versions; `full` (admin) adds run ids, metrics and data versions."""
        out = []
        for variant, version in self.routes.items():
            model, meta = self.models[version], self.meta[version]
            item = {"name": self.registry.name, "version": version, "variant": variant, "alias": meta["aliases"],
                    "task": model.task, "classes": model.classes, "input_schema": model.schema}
            if full:
                item.update(run_id=meta["run_id"], data_version=meta["data_version"], metrics=meta["metrics"])
            out.append(item)
        return out
