"""Forge: a Ray-native MLOps platform. The public API; everything else is internal."""

__version__ = "0.1.0"

__all__ = ["__version__", "load_config", "ForgeConfig", "ConfigError"]


def __getattr__(name):
    # Lazy: importing forge must not import Ray, MLflow or torch.
    if name in ("load_config", "ForgeConfig", "ConfigError"):
        from forge import config

        return getattr(config, name)
    raise AttributeError(name)
