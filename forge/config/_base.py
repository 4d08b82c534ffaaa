"""The base of every config section: unknown keys are errors, assignments are validated."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from forge.errors import UsageError


class ConfigError(UsageError):
    """A config that cannot be used; the message names the key and the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


ColumnType = Literal["int", "float", "str", "bool", "datetime"]
