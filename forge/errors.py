"""Forge's own exceptions: what the CLI (and the HTTP edge) turn into exit codes and messages.

Anything else is a bug and shows its traceback: a `KeyError` deep in a pipeline must not look like a user's
mistake. The lowest layer: imports nothing from Forge.
"""

from __future__ import annotations


class ForgeError(Exception):
    """A failure Forge understands and can explain in one message (exit 1)."""

    exit_code = 1


class UsageError(ForgeError, ValueError):
    """Bad usage: a config key, an argument, a schema or a source that cannot be used (exit 2).

    Also a ValueError, so library callers that catch ValueError keep working.
    """

    exit_code = 2


class NotFoundError(ForgeError, LookupError):
    """Something the command needs is not there yet: no champion, no validated data version (exit 1)."""


class CheckFailed(ForgeError):
    """A check the user asked to fail on (`--strict`, `--fail-on-drift`): exit 3, with the result still printed."""

    exit_code = 3

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


class ModelLoadError(ForgeError):
    """A registered model whose artifact is missing, fails its SHA-256 check, or cannot be unpickled."""
