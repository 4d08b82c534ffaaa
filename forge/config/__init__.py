"""ForgeConfig: the one model of `forge.yaml`, plus `load_config()`.

Every field has a default except `name`, `data.source` and `data.target`, so the
smallest config in DESIGN.md runs the whole pipeline. `FORGE_<SECTION>__<KEY>`
environment variables override any key; unknown keys are errors naming the key
and the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from forge.config._base import ColumnType, ConfigError, _Strict
from forge.config._data import (
    ColumnSchema,
    DataChecks,
    DataConfig,
    FeaturesConfig,
    GateConfig,
    OnlineFeaturesConfig,
    RegistryConfig,
    SplitConfig,
    TrainingConfig,
)
from forge.config._monitoring import DriftConfig, MonitoringConfig, PredictionLogConfig, RetrainingConfig
from forge.config._serving import AuthConfig, AutoscalingConfig, BatchingConfig, ServingConfig, TrafficConfig, Variant

__all__ = ["ForgeConfig", "load_config", "ConfigError", "ColumnType", "ColumnSchema", "DataChecks", "DataConfig",
           "FeaturesConfig", "GateConfig", "OnlineFeaturesConfig", "RegistryConfig", "SplitConfig", "TrainingConfig",
           "DriftConfig", "MonitoringConfig", "PredictionLogConfig", "RetrainingConfig", "AuthConfig",
           "AutoscalingConfig", "BatchingConfig", "ServingConfig", "TrafficConfig", "Variant", "ObjectStoreConfig"]


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
