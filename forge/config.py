"""ForgeConfig: the one model of `forge.yaml`, plus `load_config()`.

Every field has a default except `name`, `data.source` and `data.target`, so the
smallest config in DESIGN.md runs the whole pipeline. `FORGE_<SECTION>__<KEY>`
environment variables override any key; unknown keys are errors naming the key
and the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forge.errors import UsageError


class ConfigError(UsageError):
    """A config that cannot be used; the message names the key and the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


ColumnType = Literal["int", "float", "str", "bool", "datetime"]


class ColumnSchema(_Strict):
    type: ColumnType = Field(description="Logical type the column is parsed as.")
    nullable: bool = Field(True, description="Whether null values are allowed.")
    min: float | None = Field(None, description="Smallest allowed value (numeric columns).")
    max: float | None = Field(None, description="Largest allowed value (numeric columns).")
    allowed: list[str] | None = Field(
        None, description="Allowed categories (string columns): a hard rule, written by a person. Other values are "
                          "quarantined and refused with 422.")
    categories: list[str] | None = Field(
        None, description="Observed categories (what `forge init` saw): a profile, not a rule. A new category is "
                          "counted, reported and drifts; it is quarantined or refused only when strict is true.")
    strict: bool = Field(False, description="Make the observed categories a hard rule, like allowed.")

    def hard_categories(self) -> list[str] | None:
        """The categories a value must be one of, or None when any value goes."""
        if self.allowed is not None:
            return self.allowed
        return self.categories if self.strict else None


class DataChecks(_Strict):
    min_rows: int = Field(10, description="Fewest valid rows a dataset may have.")
    max_null_fraction: float = Field(0.5, description="Largest null fraction allowed in any column.")
    max_duplicate_rate: float = Field(0.5, description="Largest share of exact duplicate rows.")
    max_quarantined_fraction: float = Field(
        0.01, ge=0, le=1, description="Stop the run (exit 1, nothing downstream) when more than this share of the "
                                      "rows is quarantined: a dataset that lost that much is not the data you meant.")


class SplitConfig(_Strict):
    method: Literal["random", "time"] | None = Field(
        None, description="random (stratified for classification) or time; default: time when data.timestamp is set."
    )
    val_size: float = Field(0.15, description="Share of rows for validation during the search.")
    test_size: float = Field(0.2, description="Share of rows held out for evaluation and the gate.")


class DataConfig(_Strict):
    source: str = Field(description="File, folder, glob, URI (s3://, gs://, file://) or sqlite:///db for SQL.")
    target: str = Field(description="Column to predict.")
    format: Literal["csv", "parquet", "json", "sql"] | None = Field(
        None, description="Input format; inferred from the source's suffix when absent."
    )
    query: str | None = Field(None, description="SQL query, when format is sql.")
    timestamp: str | None = Field(None, description="Event-time column; enables time-based splits.")
    entity: str | None = Field(None, description="Entity id column, for the feature store.")
    schema_: dict[str, ColumnSchema] | None = Field(
        None, alias="schema", description="Declared schema; inferred from the data when absent."
    )
    checks: DataChecks = Field(default_factory=DataChecks, description="Dataset-level checks.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/validation/test split.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="Options for the object-store filesystem (endpoint_override, ...)."
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OnlineFeaturesConfig(_Strict):
    enabled: bool = Field(
        False, description="Requests may carry only data.entity: features they omit come from the online store."
    )
    table: str | None = Field(
        None, description="Feature table to read (reloaded on each registry poll when rewritten); default: model name."
    )


class FeaturesConfig(_Strict):
    numeric: list[str] | None = Field(None, description="Numeric features; inferred from the schema when absent.")
    categorical: list[str] | None = Field(None, description="Categorical features; inferred when absent.")
    drop: list[str] = Field(default_factory=list, description="Columns never used as features.")
    keep: list[str] = Field(
        default_factory=list, description="Columns used as features even when validation finds them constant or "
                                          "ID-like (such columns are left out otherwise).")
    derived: dict[str, str] = Field(
        default_factory=dict, description="New numeric columns as pandas expressions over columns, e.g. 'a / b'."
    )
    store: bool = Field(
        True, description="Write each trained data version's raw features to the offline store "
                          "(needs data.entity and data.timestamp)."
    )
    online: OnlineFeaturesConfig = Field(default_factory=OnlineFeaturesConfig,
                                         description="Serving-time lookup of features by entity id.")


class TrainingConfig(_Strict):
    task: Literal["classification", "regression"] | None = Field(None, description="Inferred from the target.")
    metric: str | None = Field(None, description="roc_auc (binary), f1_macro (multiclass), rmse (regression).")
    models: list[str] | dict[str, dict[str, Any]] | None = Field(
        None, description="Model families, or families with search-space overrides."
    )
    num_samples: int = Field(8, description="Trials in the search.")
    max_concurrent: int = Field(2, description="Trials run at once.")
    trial_cpus: float = Field(
        1.0, gt=0, description="CPUs a scikit-learn trial reserves; below 1, trials share CPUs (a small machine "
                               "that also serves). MLP trials reserve none: their TorchTrainer worker does."
    )
    max_failures: int = Field(
        2, ge=0, description="Times a trial is retried after its worker or node dies (Tune's FailureConfig).")
    scheduler: Literal["asha", "none"] = Field("asha", description="Early stopping for iterative families.")
    search_alg: Literal["optuna", "random"] = Field("optuna", description="Search algorithm.")
    max_epochs: int = Field(20, description="Epochs of the MLP family (ASHA's max_t).")
    seed: int = Field(42, description="Seed for splits and search.")
    test_size: float | None = Field(None, description="Deprecated alias of data.split.test_size.")
    slice_column: str | None = Field(None, description="Categorical column for per-slice metrics.")
    use_gpu: bool | None = Field(None, description="Train the MLP on GPUs; default: when the cluster has any.")


class GateConfig(_Strict):
    metric: str | None = Field(None, description="Gate metric; default: training.metric.")
    min: float | None = Field(None, description="Absolute floor the challenger must reach.")
    min_improvement: float = Field(0.0, description="How much the challenger must beat the champion by.")


class RegistryConfig(_Strict):
    gate: GateConfig = Field(default_factory=GateConfig, description="Champion/challenger gate.")


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


class DriftConfig(_Strict):
    drift_share: float = Field(0.5, description="Dataset drift when this share of features drifts.")
    small_reference_rows: int = Field(1000, description="At or below: KS / chi-square; above: distances.")
    p_value: float = Field(0.05, description="Significance of KS and chi-square.")
    wasserstein_threshold: float = Field(0.1, description="Normalized Wasserstein threshold.")
    jensenshannon_threshold: float = Field(0.1, description="Jensen-Shannon distance threshold.")
    psi_threshold: float = Field(0.2, description="PSI threshold, when method psi is chosen.")
    method: Literal["auto", "psi"] = Field("auto", description="auto (Evidently's rule) or psi for all.")
    reference_rows: int = Field(5000, description="Rows kept as the drift reference sample.")
    window_rows: int = Field(1000, description="Prediction-log window, in rows.")
    engine: Literal["auto", "pandas", "ray"] = Field(
        "auto", description="How `forge drift --current FILE` reads the file: ray (Ray Data, streamed and "
                            "summarised in bounded memory), pandas, or auto (ray for remote URIs and ray_min_mb+)."
    )
    ray_min_mb: float = Field(64, description="auto engine: local current data of this size or more goes to Ray Data.")
    window_s: float | None = Field(
        None, description="Prediction-log window by time: the records of the last this many seconds. When set, "
                          "it applies instead of window_rows (`forge drift --since` overrides it)."
    )
    live_interval_s: float = Field(
        30, description="Replicas recompute the live-window drift gauges at most this often (CPU off the request path)."
    )


class PredictionLogConfig(_Strict):
    path: str | None = Field(None, description="Where the log lives; default: workspace predictions/.")
    flush_rows: int = Field(5000, description="Flush after this many records (or every flush_interval_s).")
    flush_interval_s: float = Field(2.0, description="Flush at least this often.")


class MonitoringConfig(_Strict):
    drift: DriftConfig = Field(default_factory=DriftConfig, description="Drift detection.")
    prediction_log: PredictionLogConfig = Field(default_factory=PredictionLogConfig, description="Prediction log.")
    pushgateway: str | None = Field(
        None, description="Prometheus Pushgateway URL (e.g. http://pushgateway:9091): batch jobs (validate, train, "
                          "run, retrain, drift, batch) push their run and process metrics there when they end."
    )


class RetrainingConfig(_Strict):
    triggers: list[Literal["drift", "schedule", "performance", "manual"]] = Field(
        default_factory=lambda: ["drift", "manual"], description="What may start a retraining."
    )
    schedule: str = Field(
        "0 3 * * *", description="Cron schedule (UTC) for scheduled retraining: the CronJob in kuberay/ and "
                                 "`forge retrain --schedule` locally."
    )
    include_labelled: bool = Field(True, description="Add labelled recent data to the training set.")
    performance_drop: float = Field(
        0.05, description="Performance trigger: retrain when the live metric is this much worse than at test time."
    )
    performance_window: int = Field(500, description="Newest labelled predictions the live metric is computed on.")
    window_rows: int | None = Field(
        None, description="Train on at most this many rows, newest first (original + labelled); None keeps all."
    )
    split_method: Literal["random", "time"] = Field(
        "random", description="How a retraining splits its rows. random: the newest labelled rows must be learnt "
                              "from; the gate's holdout (never trained on) keeps the judgement honest."
    )
    gate_holdout: float = Field(
        0.3, description="Share of the newest labelled rows kept out of training: the gate judges both models on them."
    )
    min_labelled: int = Field(50, description="Labelled predictions needed before the live metric counts.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        from forge.pipelines.schedule import cron_trigger

        cron_trigger(v)  # raises ValueError naming the bad field
        return v


class ObjectStoreConfig(_Strict):
    endpoint_url: str | None = Field(
        None, description="S3 endpoint override for MinIO or moto (e.g. http://127.0.0.1:9000); default: "
                          "AWS_ENDPOINT_URL, else AWS. Credentials come from the usual AWS environment variables.")
    region: str | None = Field(None, description="S3 region; default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.")


class ForgeConfig(_Strict):
    name: str = Field(description="Project name; also the registered model name.")
    workspace: str | None = Field(
        None, description="Where Forge keeps its state: a folder (default .forge/ beside the config) or a URI "
                          "(s3://bucket/prefix, gs://..., file://...).")
    object_store: ObjectStoreConfig = Field(default_factory=ObjectStoreConfig,
                                            description="Object-store settings for an s3:// workspace.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default SQLite in the workspace.")
    data: DataConfig = Field(description="Data source and validation.")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig, description="Feature engineering.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Search and training.")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="Model registry and gate.")
    serving: ServingConfig = Field(default_factory=ServingConfig, description="Ray Serve app.")
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig, description="Monitoring.")
    retraining: RetrainingConfig = Field(default_factory=RetrainingConfig, description="Retraining.")

    config_path: Path | None = Field(None, exclude=True, description="The file this came from.")

    @model_validator(mode="after")
    def _online_needs_entity(self) -> ForgeConfig:
        if self.features.online.enabled and not self.data.entity:
            raise ValueError("features.online.enabled is true but data.entity is not set (the id requests carry)")
        return self

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve(self, path: str) -> str:
        """A path relative to the config's folder; URIs are returned as they are."""
        if "://" in path or path.startswith("sqlite:"):
            return path
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith("FORGE_") or "__" not in key:
            continue
        parts = [p.lower() for p in key[len("FORGE_") :].split("__")]
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw else raw
    return out


def _merge(base: dict, extra: dict) -> dict:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def _describe(err: ValidationError, path: Path) -> str:
    lines = [f"invalid config {path}:"]
    for e in err.errors():
        key = ".".join(str(x) for x in e["loc"]) or "<root>"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def load_config(path: str | Path = "forge.yaml", environ: dict[str, str] | None = None) -> ForgeConfig:
    """Read forge.yaml, apply FORGE_* overrides and validate.

    Raises:
        ConfigError: with the file and the offending keys named.
    """
    path = Path(path).resolve()
    if not path.exists():
        raise ConfigError(f"config file not found: {path} (create one with `forge init DATA --target COL`)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in {path}: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid config {path}: top level must be a mapping")
    environ = dict(os.environ if environ is None else environ)
    raw = _merge(raw, _env_overrides(environ))
    # Top-level env shortcuts named in DESIGN.md.
    for env, key in (("FORGE_WORKSPACE", "workspace"), ("FORGE_TRACKING_URI", "tracking_uri")):
        if environ.get(env):
            raw[key] = environ[env]
    try:
        cfg = ForgeConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_describe(e, path)) from e
    cfg.config_path = path
    return cfg
