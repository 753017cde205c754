"""Structured logging: JSON lines with bound context, secrets scrubbed.

Components log with ``structlog.get_logger(__name__)`` and bind context
(``event_id``, ``idempotency_key``, ``route``, ``run_id``, ``request_id``) instead of
formatting strings. :func:`redact_secrets` runs last before rendering, so a value
that looks like a Brew key never reaches a log line even if bound by mistake.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "redact", "redact_secrets"]

# Brew keys start with brew_; Authorization headers carry "Bearer <key>".
_SECRET = re.compile(r"(brew_[A-Za-z0-9_\-]{4,}|Bearer\s+\S+)")
_SECRET_KEYS = frozenset({"api_key", "apikey", "authorization", "x-api-key", "password", "secret"})


def redact(text: str) -> str:
    """Replace anything shaped like a Brew key or a bearer token with ``[REDACTED]``."""
    return _SECRET.sub("[REDACTED]", text)


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: scrub secret-looking values and secret-named keys."""
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[REDACTED]"
        elif isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Set up structlog once per process: JSON to stderr (or a console renderer)."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
