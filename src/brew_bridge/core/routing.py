"""Routing a batch safely: inline, or in a child process so that routing one batch
overlaps storing the previous one.

:func:`route_safely` turns a routing bug into a dead letter, never an exception.

Routing is pure CPU; on two cores a child that routes batch N+1 while this process
writes batch N to the outbox is measured faster than routing inline. The child builds
its router once from ``router_factory`` (which must pickle: the child is spawned) and
sends back outbox rows (:func:`~brew_bridge.store.prepare_rows`), not dataclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import structlog

from ..errors import SourceError
from ..events import NewDeadLetter, Reason, Routed, SourceRecord
from ..store import PreparedRows, prepare_rows

__all__ = ["Router", "RouterFactory", "RoutingProcess", "route_safely"]

Router = Callable[[SourceRecord], Routed]
RouterFactory = Callable[[], Router]

log = structlog.get_logger(__name__)

# What crosses the process boundary: plain tuples pickle several times faster than the
# dataclasses; the record goes to the child, its outbox rows come back.
_Row = tuple[str, str, str, bytes | None, bytes, tuple[tuple[str, bytes], ...], int | None]


def route_safely(router: Router, record: SourceRecord) -> Routed:
    """Route one record; a routing bug becomes a dead letter, never an exception."""
    try:
        return router(record)
    except Exception as exc:
        log.exception("routing_failed", record=record.coordinates)
        return Routed(
            record=record,
            dead_letters=(
                NewDeadLetter(
                    stage="ingest",
                    reason=Reason.MAPPING_ERROR,
                    message=f"routing raised {type(exc).__name__}: {exc}",
                ),
            ),
        )


def _routing_child(conn: Connection, router_factory: RouterFactory) -> None:
    """The routing child's loop: rows in, outcomes out, in order, until EOF."""
    try:
        router = router_factory()
    except Exception as exc:  # a config the parent compiled: only a bug gets here
        conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
        return
    while True:
        try:
            # Our own parent on a private pipe: trusted bytes.
            rows: list[_Row] = pickle.loads(conn.recv_bytes())  # noqa: S301
        except EOFError:  # the parent closed the pipe, or died
            return
        prepared = prepare_rows(route_safely(router, SourceRecord(*row)) for row in rows)
        conn.send_bytes(pickle.dumps(("ok", prepared), pickle.HIGHEST_PROTOCOL))


class RoutingProcess:
    """Routes batches in one child process.

    ``start()`` spawns the child, which builds its router once; ``submit`` sends it a
    batch and returns a future of its outcomes (batches are routed in order);
    ``close()`` ends the child. One pipe, read by the event loop: no helper threads in
    this process, whose GIL the outbox writes need (a ProcessPoolExecutor's two
    threads were measured to cost ~25 µs of this process's CPU per event). Spawned,
    not forked: forking a process that runs threads is unsafe. A child that dies fails
    every batch it held with :class:`SourceError`.
    """

    def __init__(self, router_factory: RouterFactory, *, name: str, setting: str) -> None:
        self._router_factory = router_factory
        self._name = name  # the child's process name
        self._setting = setting  # the config key that turns it off, for the error text
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._waiting: deque[asyncio.Future[list[PreparedRows]]] = deque()
        self._error: str | None = None

    async def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        conn, child_conn = ctx.Pipe()
        process = ctx.Process(
            target=_routing_child,
            args=(child_conn, self._router_factory),
            name=self._name,
            daemon=True,
        )
        process.start()
        child_conn.close()
        self._conn, self._process, self._error = conn, process, None
        asyncio.get_running_loop().add_reader(conn.fileno(), self._on_readable)
        try:
            await self.submit([])  # the router is built once this answers
        except BaseException:
            self.close()
            raise

    def submit(self, records: Sequence[SourceRecord]) -> asyncio.Future[list[PreparedRows]]:
        """Send a batch to the child (best when it is idle: the send blocks on a full pipe)."""
        if self._conn is None or self._error is not None:
            raise self._died()
        rows = [
            (r.source, r.stream, r.position, r.key, r.value, r.headers, r.timestamp_ms)
            for r in records
        ]
        try:
            self._conn.send_bytes(pickle.dumps(rows, pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            self._fail(str(exc))
            raise self._died() from exc
        future: asyncio.Future[list[PreparedRows]] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        return future

    def close(self) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(conn.fileno())
            conn.close()  # the child reads EOF and exits
        if process is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self._fail("the routing process was stopped")

    def _on_readable(self) -> None:
        assert self._conn is not None
        try:
            # Our own child on a private pipe: trusted bytes.
            status, body = pickle.loads(self._conn.recv_bytes())  # noqa: S301
        except (EOFError, OSError) as exc:
            code = None if self._process is None else self._process.exitcode
            self._fail(f"it exited (code {code}, {type(exc).__name__})")
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            return
        if status == "error":
            self._fail(body)
            return
        future = self._waiting.popleft()
        if not future.done():
            future.set_result(body)

    def _fail(self, reason: str) -> None:
        if self._error is None:
            self._error = reason
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(self._died())

    def _died(self) -> SourceError:
        return SourceError(
            f"the routing process failed ({self._error or 'not started'}); its batches are "
            f"neither stored nor acknowledged and are read again on restart; "
            f"{self._setting}: 0 routes inline"
        )
