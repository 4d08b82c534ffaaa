"""The Ray Serve application: FastAPI ingress over the registered champion (and A/B variants).

`build_app(cfg)` reads the champion's input schema so the request model (and
/docs) carry the real feature names and types. Replicas poll the registry and
swap models in place when an alias moves; requests in flight keep the model
object they started with, so a swap drops nothing.
"""


import uuid
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve

from forge.config import ForgeConfig
from forge.serving import schemas
from forge.serving.auth import Settings, require
from forge.serving.online import MissingFeatures


def _app(cfg: ForgeConfig, settings: Settings, input_schema: dict) -> FastAPI:
    api = FastAPI(title=f"Forge: {cfg.name}", version="1",
                  description=f"Predictions from the registered model '{cfg.name}'. Auth: Bearer JWT "
                              f"({'on' if settings.enabled else 'OFF'}).")
    online = cfg.features.online.enabled
    Instance = schemas.instance_model(input_schema, entity=cfg.data.entity if online else None)
    api.state.request_model = schemas.request_model(Instance, cfg.serving.max_instances)
    api.state.instance_model = Instance

    def count_error(reason: str) -> None:
        from forge.serving import replica

        if replica.CURRENT is not None:
            replica.CURRENT.metrics.errors.inc(tags={"reason": reason})

    @api.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        too_many = any(e.get("type") == "too_long" and tuple(e.get("loc", ()))[:2] == ("body", "instances")
                       for e in errors)
        count_error("too_large" if too_many else "validation")
        if too_many:
            return JSONResponse({"detail": f"too many instances: at most {cfg.serving.max_instances}"}, 413)
        detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
        return JSONResponse({"detail": detail}, 422)

    @api.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException):
        count_error({401: "unauthorized", 403: "forbidden", 415: "unsupported_media_type"}.get(exc.status_code,
                                                                                                str(exc.status_code)))
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    return api


def build_app(cfg: ForgeConfig) -> serve.Application:
    """The Serve application for `cfg` (raises AuthSetupError rather than start insecurely)."""
    from forge.serving.replica import ForgeReplica, load_input_schema

    settings = Settings.from_config(cfg.serving.auth)
    if not settings.enabled:
        import sys

        print("forge: WARNING serving.auth.enabled is false: the API is open to anyone who can reach it",
              file=sys.stderr)
    input_schema = load_input_schema(cfg)
    api = _app(cfg, settings, input_schema)
    RequestModel = api.state.request_model
    s = cfg.serving
    predict_dep = require(settings, "predict")
    admin_dep = require(settings, "admin")

    @serve.ingress(api)
    class ForgeService(ForgeReplica):
        @api.get("/healthz")
        def healthz(self) -> dict:
            return {"status": "ok"}

        @api.get("/readyz")
        def readyz(self):
            if not self.ready():
                return JSONResponse({"status": "loading"}, 503)
            return {"status": "ready", "version": self.champion_version()}

        @api.get("/v1/models")
        def models(self, claims: dict = Depends(predict_dep)) -> dict:
            return self.describe()

        @api.post("/v1/predict", response_model=schemas.PredictResponse)
        async def predict(self, body: RequestModel, request: Request,  # type: ignore[valid-type]
                          claims: dict = Depends(predict_dep)) -> dict:
            if "json" not in request.headers.get("content-type", ""):
                raise HTTPException(415, "Content-Type must be application/json")
            if self.online is None:
                rows = body.model_dump()["instances"]
            else:  # only what the caller sent: the store fills the rest
                try:
                    rows = self.online.fill([i.model_dump(exclude_unset=True) for i in body.instances])
                except MissingFeatures as e:
                    self.metrics.errors.inc(tags={"reason": "validation"})
                    return JSONResponse({"detail": e.detail}, 422)
            key = request.headers.get(self.traffic.key_header)
            if key is None and self.traffic.key_field and self.traffic.key_field in rows[0]:
                key = str(rows[0][self.traffic.key_field])
            return await self.handle(rows, key, request.headers.get("x-request-id") or uuid.uuid4().hex)

        @api.post("/v1/labels")
        def labels(self, body: dict, claims: dict = Depends(admin_dep)) -> dict:
            return self.accept_labels(body)

        @api.post("/v2/models/{model_name}/infer")
        async def infer_v2(self, model_name: str, body: dict, claims: dict = Depends(predict_dep)) -> Any:
            return await self.open_inference(model_name, body)

    options: dict[str, Any] = {
        "max_ongoing_requests": s.max_ongoing_requests,
        "max_queued_requests": s.max_queued_requests,
        "ray_actor_options": {"num_cpus": s.replica_cpus},
        "user_config": {"traffic": s.traffic.model_dump()},
        "health_check_period_s": 5,
        "graceful_shutdown_timeout_s": 20,
    }
    a = s.autoscaling
    if a.min_replicas == a.max_replicas:
        options["num_replicas"] = a.min_replicas
    else:
        options["autoscaling_config"] = {
            "min_replicas": a.min_replicas, "max_replicas": a.max_replicas,
            "target_ongoing_requests": a.target_ongoing_requests,
            "upscale_delay_s": a.upscale_delay_s, "downscale_delay_s": a.downscale_delay_s,
        }
    ForgeService._instance = api.state.instance_model
    deployment = serve.deployment(name="forge", **options)(ForgeService)
    return deployment.bind(cfg.model_dump(mode="json", by_alias=True), str(cfg.config_path))


def app_builder(args: dict) -> serve.Application:
    """Entry point for `serve run` / `serve deploy` / RayService: args {config: path to forge.yaml}."""
    from forge._runtime import quiet
    from forge.config import load_config

    quiet()
    return build_app(load_config(args.get("config", "forge.yaml")))

