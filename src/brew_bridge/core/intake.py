"""Ingest glue shared by every source: route a batch, store it in one outbox
transaction, count it.

A source (the Kafka consumer, later the webhook server) hands over a batch of
:class:`SourceRecord`; when :meth:`Ingest.store` returns, every record is durably a
delivery, a dead letter, or counted as dropped, and only then may the source
acknowledge it (commit the offset, answer 2xx). Routing is pure and meant never to
raise; if it does anyway (a bug), that record becomes a ``mapping_error`` dead letter
instead of blocking its partition forever (invariant 5).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from brew_bridge.events import NewDeadLetter, Reason, Routed, SourceRecord
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store.outbox import Outbox, PreparedRows, StagedBatch, StoreResult, prepare_rows

__all__ = ["Ingest", "Router", "route_safely"]

Router = Callable[[SourceRecord], Routed]

log = structlog.get_logger(__name__)


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


class Ingest:
    """Route and store batches for one source (``source`` labels the metrics)."""

    def __init__(
        self,
        router: Router,
        outbox: Outbox,
        metrics: Metrics,
        *,
        source: str = "kafka",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._router = router
        self._outbox = outbox
        self._metrics = metrics
        self._source = source
        self._clock = clock

    def route(self, record: SourceRecord) -> Routed:
        """Route one record; a routing bug becomes a dead letter, never an exception."""
        return route_safely(self._router, record)

    def prepare_batch(self, records: Sequence[SourceRecord]) -> list[PreparedRows]:
        """Route every record into the outbox rows it becomes (pure CPU, no I/O)."""
        return prepare_rows(self.route(record) for record in records)

    def stage(
        self, records: Sequence[SourceRecord], prepared: Sequence[PreparedRows]
    ) -> StagedBatch:
        """Write prepared records in an open outbox transaction (see
        :meth:`Outbox.stage_batch`); :meth:`count` them once it is committed."""
        return self._outbox.stage_rows(records, prepared, self._clock())

    def store(self, records: Sequence[SourceRecord]) -> StoreResult:
        """Route every record and store the batch in ONE outbox transaction, then count it."""
        result = self.stage(records, self.prepare_batch(records)).commit()
        self.count(len(records), result)
        return result

    def count(self, consumed: int, result: StoreResult) -> None:
        """Count a stored batch of ``consumed`` records in the metrics."""
        m, source = self._metrics, self._source
        m.events_consumed.labels(source).inc(consumed)
        for route, n in result.inserted_by_route.items():
            if n:
                m.events_routed.labels(source, route).inc(n)
        for route, n in result.duplicates_by_route.items():
            if n:
                m.events_duplicate.labels(source, route).inc(n)
        if result.dropped:
            m.events_dropped.labels(source, Reason.NO_ROUTE.value).inc(result.dropped)
        for (route, reason), n in result.dead_letters_by_reason.items():
            if n:
                m.dead_letters.labels("ingest", route, reason).inc(n)
