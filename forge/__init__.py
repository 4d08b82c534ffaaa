"""Forge: a Ray-native MLOps platform. The public API; everything else is internal.

    from forge import load_config, DataLoader, DataValidator, FeatureEngineer, ModelTrainer, ExperimentTracker
    from forge import Pipeline, DriftMonitor, Forge

Importing forge imports neither Ray, MLflow nor torch: the names load on first use.
"""

__version__ = "0.1.0"

_CONFIG = ("load_config", "ForgeConfig", "ConfigError")
_API = ("DataLoader", "DataValidator", "FeatureEngineer", "ModelTrainer", "ExperimentTracker", "Pipeline",
        "DriftMonitor", "Forge")
__all__ = ["__version__", *_CONFIG, *_API]


def __getattr__(name: str) -> object:
    if name in _CONFIG:
        from forge import config

        return getattr(config, name)
    if name in _API:
        from forge import api

        return getattr(api, name)
    raise AttributeError(name)
