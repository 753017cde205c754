"""One API request in a simulator's request log, as ``GET /_sim/requests`` lists it.

The Pinkfish and Boring Marketing simulators log their requests as :class:`Logged`
entries (the Brew simulator keeps its own flat rows, :class:`~.state.RequestLog`); both
keep them in a :class:`Log`. Each
entry shows one header of its API's, under the row key its subclass names
(:attr:`Logged.HEADER`): Pinkfish's ``x-api-wait``, Boring Marketing's masked key.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

__all__ = ["Log", "Logged"]

E = TypeVar("E")


@dataclass(slots=True)
class Logged:
    """One API request in the request log; its path and header never hold a key."""

    HEADER: ClassVar[str] = "header"  # the row key of ``header``

    at: float
    method: str
    path: str
    request_id: str
    header: str | None  # the one header the log shows, as the subclass says
    body: Any = None
    status: int | None = None  # 0: the client left before an answer
    fault: str | None = None

    def set_status(self, status: int) -> None:
        self.status = status

    def answered(self, status: int) -> None:
        """The answer starts with ``status``: logged unless a fault has set one."""
        if self.status is None:
            self.status = status

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "method": self.method,
            "path": self.path,
            self.HEADER: self.header,
            "body": self.body,
            "status": self.status,
            "fault": self.fault,
            "requestId": self.request_id,
        }


class Log(Generic[E]):
    """Every API request received, oldest first, newest ``size`` kept."""

    def __init__(self, size: int) -> None:
        self._entries: deque[E] = deque(maxlen=size)

    def add(self, entry: E) -> E:
        self._entries.append(entry)
        return entry

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries)

    def clear(self) -> None:
        self._entries.clear()
