"""The Ray Serve application: a FastAPI ingress over the registered champion (and A/B variants).

Each replica builds its FastAPI app over the champion it loaded (`_ingress`), so the request models (and /docs,
when on) carry the real feature names and types. Every route goes through the same limits: the body size before
parsing or auth (limits.py), then the request model (types, bounds, string lengths, row count), then the auth
dependency.
Replicas (replica.py) poll the registry and swap models in place when an alias moves.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at runtime, and the request models
# are local classes built from the champion's schema (a postponed annotation would not resolve: 422 "query body").
import logging
from typing import Any

import pydantic_core
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError
from ray import serve

from forge.config import ForgeConfig, ServingConfig
from forge.monitoring.metrics import process_metrics
from forge.serving import schemas
from forge.serving.alerts import start_retraining
from forge.serving.auth import Settings, require, settings_for
from forge.serving.body import body_doc, document_models, json_body
from forge.serving.docs import mount_docs
from forge.serving.limits import BodyLimit
from forge.serving.online import MissingFeatures

log = logging.getLogger("forge.serving")


def _count(reason: str) -> None:
    process_metrics().errors.inc(tags={"reason": reason})


def docs_enabled(cfg: ForgeConfig) -> bool:
    """/docs and /openapi.json show feature bounds and categories: on only in dev mode unless set."""
    auth = cfg.serving.auth
    return cfg.serving.docs if cfg.serving.docs is not None else (auth.dev_mode or not auth.enabled)


def _app(cfg: ForgeConfig, settings: Settings) -> FastAPI:
    docs = docs_enabled(cfg)
    api = FastAPI(title=f"Forge: {cfg.name}", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json" if docs else None,
                  description=f"Predictions from the registered model '{cfg.name}'. Auth: Bearer JWT "
                              f"({'on' if settings.enabled else 'OFF'}).")
    if docs:
        mount_docs(api)  # Swagger UI and ReDoc with their assets served here: no CDN (docs.py)
    api.add_middleware(BodyLimit, max_bytes=cfg.serving.max_body_bytes, on_reject=lambda: _count("too_large"))
    limit = {"instances": cfg.serving.max_instances, "labels": cfg.serving.max_labels}

    @api.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        over = next((field for e in errors for field in limit if e.get("type") == "too_long"
                     and tuple(e.get("loc", ()))[:2] == ("body", field)), None)
        _count("too_large" if over else "validation")
        if over:
            return JSONResponse({"detail": f"too many {over}: at most {limit[over]}"}, 413)
        return JSONResponse({"detail": _clean(errors)}, 422)

    @api.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException):
        reasons = {401: "unauthorized", 403: "forbidden", 415: "unsupported_media_type", 422: "validation"}
        _count(reasons.get(exc.status_code, str(exc.status_code)))
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    return api


async def _json_body(request: Request) -> None:  # async: no thread-pool hop for a header check
    """415 for a body that is not JSON: a dependency, so it runs before FastAPI validates the body."""
    if "json" not in request.headers.get("content-type", "").lower():
        raise HTTPException(415, "Content-Type must be application/json")


def _clean(errors: list[dict]) -> list[dict]:
    """Pydantic's errors without the input echoed back (it may be megabytes, or someone else's data)."""
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]


def _body_models(cfg: ForgeConfig, input_schema: dict | None) -> tuple[type, type]:
    """The /v1/predict and /v1/labels body models: typed by the champion's schema when there is one."""
    instance = schemas.served_instance_model(cfg, input_schema) if input_schema is not None \
        else schemas.any_instance(cfg.serving.max_string_length)
    return schemas.request_model(instance, cfg.serving.max_instances), schemas.labels_model(cfg.serving.max_labels)


def _ingress(settings: Settings):
    """The ingress class. Its FastAPI app is built in each replica, once the constructor has loaded the champion
    (Serve's late-bound ingress, `__serve_build_asgi_app__`): the request model and /docs carry that champion's
    schema, and the process that deploys the app neither opens the registry nor imports what a replica needs
    (MLflow, scikit-learn). Both were 3-5 s of `forge serve`'s cold start here, beside Ray's own start (cProfile,
    -X importtime), and the replica paid them again."""

    @serve.ingress()
    class ForgeService:
        def __init__(self, cfg_dict: dict, config_path: str):
            from forge.serving.replica import ForgeReplica

            self.replica = ForgeReplica(cfg_dict, config_path)

        def reconfigure(self, user_config: dict) -> None:
            self.replica.reconfigure(user_config)

        def __serve_build_asgi_app__(self) -> FastAPI:
            return _routes(self.replica, settings)

        def __del__(self):
            # Serve calls it on graceful shutdown: what is buffered is flushed, nothing is lost.
            if hasattr(self, "replica"):
                self.replica.close()

    return ForgeService


def _routes(replica, settings: Settings) -> FastAPI:
    """The app over one replica; typed by its champion's schema, or checked late when none was loaded yet."""
    from forge.serving.replica import client_request_id

    cfg, input_schema = replica.cfg, replica.champion_schema()
    api = _app(cfg, settings)
    typed = input_schema is not None  # no champion at start: rows are checked by the replica once one loads
    RequestModel, LabelsModel = _body_models(cfg, input_schema)
    predict_dep, admin_dep = require(settings, "predict"), require(settings, "admin")
    as_dicts = schemas.as_dicts(RequestModel)  # rows validated straight into dicts: no model objects to dump
    # Every body is parsed after auth, in one pydantic-core pass (body.py): a caller without a valid token gets
    # 401 whatever it sent, malformed JSON or a body at the size limit included, and costs no parse.
    predict_body = json_body(as_dicts)
    labels_body, alerts_body, infer_body = (json_body(TypeAdapter(m)) for m in (
        LabelsModel, schemas.AlertWebhook, schemas.InferRequest))
    document_models(api, [RequestModel, LabelsModel, schemas.AlertWebhook, schemas.InferRequest])

    @api.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @api.get("/readyz")
    def readyz():
        ready, body = replica.readiness()
        return body if ready else JSONResponse(body, 503)

    @api.get("/v1/models")
    def models(claims: dict = Depends(predict_dep)) -> dict:
        return replica.describe(full="admin" in str(claims.get("scope", "")).split())

    @api.post("/v1/predict", response_model=schemas.PredictResponse, dependencies=[Depends(_json_body)],
              openapi_extra=body_doc(RequestModel))
    async def predict(request: Request, claims: dict = Depends(predict_dep),
                      body: Any = Depends(predict_body)) -> Response:
        client_id = client_request_id(request.headers.get("x-request-id"))
        rows = _request_rows(replica, body, typed)
        return _json(await replica.handle(rows, replica.router.assignment_key(request.headers, rows), client_id))

    @api.post("/v1/labels", dependencies=[Depends(_json_body)], openapi_extra=body_doc(LabelsModel))
    def labels(claims: dict = Depends(admin_dep), body: Any = Depends(labels_body)) -> dict:
        return replica.accept_labels(body.model_dump()["labels"])

    @api.post("/v1/alerts", dependencies=[Depends(_json_body)], openapi_extra=body_doc(schemas.AlertWebhook))
    def alerts(claims: dict = Depends(admin_dep), body: Any = Depends(alerts_body)) -> dict:
        """Alertmanager's webhook: a firing drift alert starts a retraining check as a Ray job (admin)."""
        return start_retraining(cfg, body, str(claims.get("sub", "anonymous")))

    @api.post("/v2/models/{model_name}/infer", dependencies=[Depends(_json_body)],
              openapi_extra=body_doc(schemas.InferRequest))
    async def infer_v2(model_name: str, claims: dict = Depends(predict_dep), body: Any = Depends(infer_body)) -> Any:
        if model_name != cfg.name:
            raise HTTPException(404, {"error": f"unknown model {model_name!r}"})
        request = _v2_request(as_dicts, body)
        if isinstance(request, JSONResponse):
            return request
        out = await replica.handle(_request_rows(replica, request, typed), None, body.id)
        return _oip_response(model_name, out)

    return api


def _request_rows(replica, body: dict, typed: bool) -> list[dict]:
    """A validated body's rows: checked against the champion first when the app was built before one existed
    (typed False), filled from the feature store when online features are on."""
    rows = body["instances"] if typed else replica.typed_instances(body["instances"])
    if replica.online is None:
        return rows
    try:  # only what the caller sent (as_dicts leaves out what was not): the store fills the rest
        return replica.online.fill(rows)
    except MissingFeatures as e:
        raise HTTPException(422, e.detail) from None


def _json(out: dict) -> Response:
    """/v1/predict's answer, encoded once by pydantic-core: returned as a Response, FastAPI neither validates it
    against `PredictResponse` again (that stays the route's documented model) nor encodes it with json.dumps,
    a twentieth of a replica's samples under 100-row load (py-spy). The same JSON: only a float's spelling may
    differ (0.00001 for json.dumps' 1e-05)."""
    return Response(pydantic_core.to_json(out), media_type="application/json")


def _v2_request(as_dicts: TypeAdapter, body: schemas.InferRequest):
    """The /v1 request body over the v2 columns, or the protocol's error body (413 too many rows, 422 else)."""
    try:
        return as_dicts.validate_python({"instances": body.rows()})
    except ValidationError as e:
        too_many = any(x["type"] == "too_long" and x["loc"][:1] == ("instances",) for x in e.errors())
        _count("too_large" if too_many else "validation")
        return JSONResponse({"error": f"{e.error_count()} invalid value(s)", "detail": _clean(e.errors())},
                            413 if too_many else 422)
    except ValueError as e:  # columns of unequal length, duplicate names
        _count("validation")
        return JSONResponse({"error": str(e)}, 422)


def _oip_response(model_name: str, out: dict) -> dict:
    """The Open Inference Protocol's answer: predictions, and for a classifier each row's class probabilities (a
    [rows, classes] tensor, row-major, in the order /v1/models lists the classes)."""
    pred, proba = out["predictions"], out["probabilities"]
    kind = "FP64" if pred and isinstance(pred[0], float) else "INT64" if pred and isinstance(pred[0], int) else "BYTES"
    outputs = [{"name": "predictions", "shape": [len(pred)], "datatype": kind, "data": pred}]
    if proba is not None:
        outputs.append({"name": "probabilities", "shape": [len(proba), len(proba[0]) if proba else 0],
                        "datatype": "FP64", "data": [p for row in proba for p in row]})
    # The protocol returns the caller's id; labels join on the server's, given in parameters.
    return {"model_name": model_name, "model_version": out["model"]["version"],
            "id": out["client_request_id"] or out["request_id"], "parameters": {"request_id": out["request_id"]},
            "outputs": outputs}


def _options(s: ServingConfig) -> dict[str, Any]:
    """Deployment options: replica resources, queue limits (503 beyond), autoscaling."""
    options: dict[str, Any] = {
        "max_ongoing_requests": s.max_ongoing_requests, "max_queued_requests": s.max_queued_requests,
        "ray_actor_options": {"num_cpus": s.replica_cpus}, "user_config": {"traffic": s.traffic.model_dump()},
        "health_check_period_s": 5, "graceful_shutdown_timeout_s": 20,
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
    return options


def build_app(cfg: ForgeConfig) -> serve.Application:
    """The Serve application for `cfg` (raises AuthSetupError rather than start insecurely)."""
    settings = settings_for(cfg)
    if not settings.enabled:
        import sys

        print("forge: WARNING serving.auth.enabled is false: the API is open to anyone who can reach it",
              file=sys.stderr)
    service = _ingress(settings.verifier())  # the deployment is pickled into Ray's GCS: no signing key in it
    deployment = serve.deployment(name="forge", **_options(cfg.serving))(service)
    return deployment.bind(cfg.model_dump(mode="json", by_alias=True), str(cfg.config_path))


def app_builder(args: dict) -> serve.Application:
    """Entry point for `serve run` / `serve deploy` / RayService: args {config: path to forge.yaml}."""
    from forge._runtime import quiet
    from forge.config import load_config

    quiet()
    return build_app(load_config(args.get("config", "forge.yaml")))
