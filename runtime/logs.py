"""structlog configuration, done once per process at its entry point.

Context (command id, correlation id, app) is bound with contextvars at each entry
point and merged into every line, including stdlib loggers routed through
``ProcessorFormatter``. Secrets are redacted by a processor, whatever their key.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from runtime import jsonbytes

# Keys whose values are always secret. Not a bare "code": error codes are useful.
_SECRET_KEYS = re.compile(
    r"(token|secret|password|passwd|api[_-]?key|authorization|cookie|launch[_-]?code)$", re.I
)
_SECRET_VALUES = [
    re.compile(r"(?i)(authorization:\s*(?:token|bearer|basic)\s+)[^\s'\"]+"),
    re.compile(r"(?i)([?&](?:token|code|key)=)[^&\s'\"]+"),
    re.compile(r"(amqps?://[^:/\s]+:)[^@\s]+(@)"),
    re.compile(r"(?i)((?:postgres(?:ql)?(?:\+\w+)?)://[^:/\s]+:)[^@\s]+(@)"),
    re.compile(r"(?i)(https?://[^:/\s@]+:)[^@\s]+(@)"),
    re.compile(r"\borch_[A-Za-z0-9_-]{20,}"),
    # Signed launch codes and JWTs: base64url JSON ("eyJ...") dot signature.
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}(?:\.[A-Za-z0-9_-]+)?"),
]
REDACTED = "[redacted]"
# Cheap first pass: a string with none of these markers cannot match any pattern above.
_MAYBE_SECRET = re.compile(r"(?i)authorization|[?&](?:token|code|key)=|://|orch_|eyJ")


def redact_text(text: str) -> str:
    """Replace credentials inside free text (URLs, headers, app keys) with a marker."""
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern in _SECRET_VALUES:
        if pattern.groups == 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)
        elif pattern.groups == 1:
            text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop values of secret-named keys and scrub free text,
    inside nested dicts and lists too (and in formatted tracebacks, see below)."""
    for key, value in event_dict.items():  # values replaced in place: same keys, same size
        if type(value) is str and not _is_secret_key(key):
            if _MAYBE_SECRET.search(value):  # the common case, inlined: nothing to scrub
                event_dict[key] = redact_text(value)
        else:
            event_dict[key] = _redact_field(key, value)
    return event_dict


def redact_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: scrub a formatted traceback (formatted only at render time)."""
    exception = event_dict.get("exception")
    if isinstance(exception, str):
        event_dict["exception"] = redact_text(exception)
    return event_dict


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    """Whether ``key`` names a secret (cached: log lines reuse a few hundred keys)."""
    return _SECRET_KEYS.search(key) is not None


def _redact_field(key: str, value: Any) -> Any:
    if _is_secret_key(key) and value is not None:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_field(str(k), v) for k, v in value.items()}
    if isinstance(value, list):  # not tuples: exc_info is one
        return [_redact_field("", v) for v in value]
    return value


def configure_logging(process: str, *, json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog and stdlib logging for this process (call once, first).

    ``json`` defaults to True when stderr is not a TTY. Every line carries
    ``process`` so mixed logs of the local stack stay readable.
    """
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    # structlog's own loggers render and write directly (no stdlib LogRecord per line:
    # a third of the cost of a line), JSON lines as bytes by orjson; stdlib loggers of
    # libraries go through the same processors by ProcessorFormatter, to the same stream.
    exceptions: list[Any] = [structlog.processors.format_exc_info, redact_exception]
    text_renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    stderr_bytes = getattr(sys.stderr, "buffer", None)
    renderer: Any
    factory: Any
    if json and stderr_bytes is not None:
        renderer = structlog.processors.JSONRenderer(jsonbytes.dumps)
        factory = structlog.BytesLoggerFactory(stderr_bytes)
    else:
        renderer, factory = text_renderer, structlog.WriteLoggerFactory(sys.stderr)
    structlog.configure(
        processors=[*shared, *exceptions, renderer],
        logger_factory=factory,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exceptions,
            text_renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiormq", "aio_pika", "aiohttp.access", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(process=process)
