"""Every error brew-bridge raises, in one tree.

    BridgeError
    ├── ConfigError                 a config file or override is invalid (file, key path, line, fix)
    ├── SourceError                 a source (Kafka, webhooks) could not be started or read
    ├── StoreError                  the SQLite outbox refused an operation (schema, write)
    ├── SinkError                   a sink (the DLQ / result topic producer) could not be started
    └── TargetError                 talking to a target (Brew, Pinkfish, ...) went wrong
        ├── Unsupported             the target has no such operation (Pinkfish: cancel)
        ├── TransportError          no answer: connect failure, timeout, reset
        │   └── UnknownOutcome      the request may have been processed (sent, then no answer)
        └── ApiError                the target answered non-2xx (code, request id, retryAfter)
            ├── AuthError           401 / 403: open the auth gate, never dead-letter
            └── RateLimited         429

Errors from the layer below (httpx, aiokafka, sqlite3, pydantic) are converted at the
boundary: ``raise Ours(...) from exc``. No error message ever contains a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ApiError",
    "AuthError",
    "BridgeError",
    "ConfigError",
    "ConfigProblem",
    "RateLimited",
    "SinkError",
    "SourceError",
    "StoreError",
    "TargetError",
    "TransportError",
    "UnknownOutcome",
    "Unsupported",
]


class BridgeError(Exception):
    """Base of every error brew-bridge raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: where it is and what to write instead."""

    file: str
    key_path: str
    message: str
    fix: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key_path}: {self.message} (fix: {self.fix})"


class ConfigError(BridgeError, ValueError):
    """A config that cannot start. Carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TargetError(BridgeError):
    """Talking to a target failed."""


class Unsupported(TargetError):
    """The target has no such operation (Pinkfish cannot cancel a run): nothing was sent."""


class TransportError(TargetError):
    """The request got no HTTP answer (connect error, timeout, reset)."""


class UnknownOutcome(TransportError):
    """The request was sent but no answer came back: the target may have acted on it.

    Resolved by sending again with the same Idempotency-Key.
    """


@dataclass
class ApiError(TargetError):
    """The target answered with a non-2xx status.

    Built by the target's client from the error body (for Brew: the standard
    ``{error: {...}}`` envelope, the legacy fire envelope, or the status alone).
    """

    status: int
    code: str
    type: str
    message: str
    param: str | None = None
    suggestion: str | None = None
    docs: str | None = None
    retry_after: float | None = None
    details: Mapping[str, Any] | None = None
    request_id: str | None = None
    body: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.code}: {self.message}")

    def __str__(self) -> str:
        rid = f" [{self.request_id}]" if self.request_id else ""
        return f"{self.status} {self.code}: {self.message}{rid}"

    def envelope(self) -> dict[str, Any]:
        """The error as stored with a dead letter: everything needed to understand it."""
        return {
            "status": self.status,
            "code": self.code,
            "type": self.type,
            "message": self.message,
            "param": self.param,
            "suggestion": self.suggestion,
            "docs": self.docs,
            "retryAfter": self.retry_after,
            "details": dict(self.details) if self.details is not None else None,
            "requestId": self.request_id,
        }


class AuthError(ApiError):
    """401 or 403: the key is wrong, revoked or lacks scope. Opens the auth gate."""


class RateLimited(ApiError):
    """429: over the server's rate limit; ``retry_after`` says for how long."""


class StoreError(BridgeError):
    """The outbox database could not be opened, migrated or written."""


class SourceError(BridgeError):
    """A source could not be started or read."""


class SinkError(BridgeError):
    """A sink (the DLQ or result topic producer) could not be started."""
