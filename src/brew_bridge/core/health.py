"""Outbox health as the loops see it: the last failed outbox operation, for ``/readyz``."""

from __future__ import annotations

import structlog

__all__ = ["OutboxHealth"]

log = structlog.get_logger(__name__)


class OutboxHealth:
    """Shared by the dispatcher and the poller: a failure sets it, the next success clears it."""

    def __init__(self) -> None:
        self.error: str | None = None

    def failed(self, operation: str, exc: Exception) -> None:
        self.error = f"{operation} failed: {exc}"
        log.error("outbox operation failed", operation=operation, error=str(exc))

    def succeeded(self) -> None:
        self.error = None
