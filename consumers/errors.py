"""Outcomes of talking to the Hub and the single-user servers, as typed errors.

Transient errors are retried (in-process, then through the retry queues); permanent
errors fail the command at once with a message that says why.
"""

from __future__ import annotations


class CommandError(Exception):
    """Base of every failure a handler may raise; ``code`` is stable for apps."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientError(CommandError):
    """Worth retrying: connection refused/reset, timeout, 5xx, 429."""

    code = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(CommandError):
    """Retrying cannot help: the request itself is wrong or not allowed."""

    code = "permanent"


class UnknownHub(PermanentError):
    """The workspace lives on a Hub that is not (any more) in the configuration."""

    code = "unknown_hub"


class HubForbidden(PermanentError):
    """403 from the Hub: the orchestrator's service role lacks a scope."""

    code = "hub_forbidden"


class NotFoundError(PermanentError):
    """The named thing does not exist (e.g. a version id or a file to save)."""

    code = "not_found"


class ConflictError(PermanentError):
    """The notebook is not at the version the app said it is (``if_version``)."""

    code = "conflict"


class InvalidNotebook(PermanentError):
    """Content is not a valid nbformat notebook."""

    code = "invalid_notebook"


class SpawnFailed(PermanentError):
    """The Hub reported that the server failed to start."""

    code = "spawn_failed"
