"""The `serving` config section: replicas, batching, auth, limits and A/B traffic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forge.config._base import _Strict
from forge.errors import UsageError


class AutoscalingConfig(_Strict):
    min_replicas: int = Field(1, description="Fewest replicas.")
    max_replicas: int = Field(2, description="Most replicas.")
    target_ongoing_requests: float = Field(16, description="Requests per replica the autoscaler aims for.")
    upscale_delay_s: float = Field(5, description="Seconds of high load before scaling up.")
    downscale_delay_s: float = Field(60, description="Seconds of low load before scaling down.")


class BatchingConfig(_Strict):
    enabled: bool = Field(True, description="Dynamic batching of concurrent requests.")
    max_batch_size: int = Field(16, description="Largest batch the model sees.")
    batch_wait_timeout_s: float = Field(0.002, description="How long a batch waits to fill.")


class AuthConfig(_Strict):
    enabled: bool = Field(True, description="JWT auth on /v1 endpoints; off only when set false explicitly.")
    algorithm: Literal["HS256", "RS256"] = Field("HS256", description="JWT signature algorithm.")
    public_key_path: str | None = Field(None, description="PEM public key, for RS256.")
    dev_mode: bool = Field(False, description="Allow the well-known dev secret (never in production).")
    issuer: str | None = Field(None, description="Required `iss` claim of every token when set (and written by "
                                                 "`forge token create`).")
    audience: str | None = Field(None, description="Required `aud` claim of every token when set.")
    leeway_s: float = Field(10, ge=0, le=300, description="Clock skew allowed on `exp`/`iat`, in seconds.")
    max_ttl_s: int = Field(86400, ge=60, description="Longest lifetime `forge token create --ttl` may give a token.")


class Variant(_Strict):
    name: str = Field(min_length=1, description="Variant label, as in metrics and the prediction log.")
    model: str = Field(min_length=1, description="Registry alias (champion) or version number.")
    weight: float = Field(1.0, description="Share of unkeyed traffic.")

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """NAME=ALIAS_OR_VERSION[:WEIGHT], as `forge ab set --variant` takes it."""
        name, _, rest = spec.partition("=")
        model, _, weight = rest.partition(":")
        try:
            return cls(name=name, model=model, weight=float(weight or 1))
        except ValueError:
            raise UsageError(f"--variant {spec!r}: expected NAME=ALIAS_OR_VERSION[:WEIGHT]") from None


class TrafficConfig(_Strict):
    experiment_id: str = Field("default", description="Salt of the sticky assignment hash.")
    key_header: str = Field("x-forge-key", description="Header carrying the assignment key.")
    key_field: str | None = Field(None, description="Instance field carrying the assignment key.")
    variants: list[Variant] = Field(
        default_factory=lambda: [Variant(name="champion", model="champion")], description="Variants and weights."
    )
    shadow: str | None = Field(None, description="Alias or version that gets a copy of traffic, never returned.")


class ServingConfig(_Strict):
    host: str = Field("127.0.0.1", description="HTTP host.")
    port: int = Field(8000, description="HTTP port of the Serve proxy.")
    route_prefix: str = Field("/", description="Route prefix of the app.")
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig, description="Replica autoscaling.")
    max_ongoing_requests: int = Field(32, description="Concurrent requests per replica.")
    max_queued_requests: int = Field(64, description="Queued requests before 503.")
    max_instances: int = Field(1000, description="Largest batch per request (413 beyond).")
    max_body_bytes: int = Field(4 << 20, ge=1024, description="Largest request body in bytes, checked before "
                                                              "parsing or auth (413 beyond).")
    max_string_length: int = Field(256, ge=1, description="Longest string feature value (422 beyond).")
    max_labels: int = Field(10000, ge=1, description="Most labels in one POST /v1/labels (413 beyond).")
    docs: bool | None = Field(None, description="Serve /docs and /openapi.json; default: only in dev mode "
                                                "(auth.dev_mode, or auth off).")
    replica_cpus: float = Field(0.5, description="CPUs reserved per replica (leave room for training on small hosts).")
    batching: BatchingConfig = Field(default_factory=BatchingConfig, description="Dynamic batching.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Authentication.")
    traffic: TrafficConfig = Field(default_factory=TrafficConfig, description="A/B variants and shadow.")
    model_poll_s: float = Field(10, description="How often replicas check whether @champion moved.")
