"""Structured logging: JSON lines with bound context, secrets scrubbed.

Components log with ``structlog.get_logger(__name__)`` and bind context
(``event_id``, ``idempotency_key``, ``route``, ``run_id``, ``request_id``) instead of
formatting strings. :func:`redact_secrets` runs last before rendering, through nested
values too, so a secret never reaches a log line even if bound by mistake: the keys
the process actually read (:func:`hide`, whatever their shape), anything shaped like a
Brew key or a bearer token, and the values of secret-named fields.

:func:`mask_emails` is the one email mask (``ada@example.com`` -> ``a***@example.com``);
:func:`safe_text` applies both, for text shown to people who need not see either (the
status page).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = [
    "configure_logging",
    "hide",
    "mask_emails",
    "redact",
    "redact_secrets",
    "safe_text",
]

# Brew keys start with brew_; Authorization headers carry "Bearer <key>". Our own names
# (the brew_bridge package in traceback paths, brew_bridge_* metrics) and Brew's
# "brew_api" provider are words, not keys.
_SECRET = re.compile(r"(\bbrew_(?!bridge|api\b)[A-Za-z0-9_\-]{4,}|Bearer\s+\S+)")
_SECRET_KEYS = frozenset({"api_key", "apikey", "authorization", "x-api-key", "password", "secret"})
_REDACTED = "[REDACTED]"
# Shorter values would redact ordinary words; no real key is that short.
_MIN_HIDDEN = 8
_hidden: set[str] = set()
# An address as it appears in text, JSON or a URL (``%40`` for the ``@``): the first
# character of the local part is kept so that two addresses on one page stay apart.
_EMAIL = re.compile(r"([A-Za-z0-9])[A-Za-z0-9._%+\-]*(@|%40)([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)")


def hide(secret: str) -> None:
    """Redact this exact value from every log line from now on (a key the process read)."""
    if len(secret) >= _MIN_HIDDEN:
        _hidden.add(secret)


def redact(text: str) -> str:
    """Replace every hidden secret, and anything shaped like a Brew key or a bearer
    token, with ``[REDACTED]``."""
    for secret in _hidden:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return _SECRET.sub(_REDACTED, text)


def mask_emails(text: str) -> str:
    """Every email address in ``text`` masked: ``ada.lovelace@example.com`` ->
    ``a***@example.com``. Idempotent (a masked address is not masked again)."""
    return _EMAIL.sub(r"\1***\2\3", text)


def safe_text(text: str) -> str:
    """``text`` with secrets redacted (:func:`redact`) and emails masked (:func:`mask_emails`)."""
    return mask_emails(redact(text))


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            k: _REDACTED if isinstance(k, str) and k.lower() in _SECRET_KEYS else _scrubbed(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: scrub secret-looking values and secret-named keys, nested too."""
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = _REDACTED
        else:
            event_dict[key] = _scrubbed(value)
    return event_dict


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    """A logger writing to ``sys.stderr`` as it is when the logger is made."""
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(level: str = "INFO", fmt: str = "json", *, cache: bool = True) -> None:
    """Set up structlog once per process: JSON to stderr (or a console renderer).

    ``cache``: each module's logger is built once, on first use (the worker's hot paths);
    a short command run inside another program (``check --online`` from a test) passes
    False, so nothing it configured stays bound after it returns."""
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
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=cache,
    )
