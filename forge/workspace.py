"""Where things live under the workspace (`.forge/` beside the config by default)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forge.config import ForgeConfig


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_config(cls, cfg: ForgeConfig) -> Workspace:
        root = Path(cfg.resolve(cfg.workspace)) if cfg.workspace else cfg.base_dir / ".forge"
        return cls(root.resolve())

    def _dir(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def tracking_uri(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self._dir("mlartifacts")

    def datasets(self, name: str) -> Path:
        return self._dir("datasets", name)

    def dataset(self, name: str, version: str) -> Path:
        return self.root / "datasets" / name / version

    def quarantine(self, name: str) -> Path:
        return self._dir("quarantine", name)

    def reports(self) -> Path:
        return self._dir("reports")

    def predictions(self, model: str) -> Path:
        return self._dir("predictions", model)

    def features(self) -> Path:
        return self._dir("features")

    def labels(self, model: str) -> Path:
        return self._dir("labels", model)

    def tune(self) -> Path:
        return self._dir("tune")

    def staging(self) -> Path:
        return self._dir("staging")


def tracking_uri(cfg: ForgeConfig) -> str:
    return cfg.tracking_uri or Workspace.from_config(cfg).tracking_uri
