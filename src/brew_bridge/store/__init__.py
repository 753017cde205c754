"""The durable store: the SQLite outbox, its schema, its rows. Every SQL statement is here."""

from brew_bridge.store.codecs import PreparedRows, prepare_rows
from brew_bridge.store.outbox import Outbox, StagedBatch
from brew_bridge.store.rows import (
    DELIVERY_STATES,
    LIVE_STATES,
    DeadLetterRow,
    DeliveryRow,
    DeliveryState,
    FiredMark,
    OutboxOverview,
    OutboxStats,
    PruneResult,
    RunRecord,
    StoreResult,
)
from brew_bridge.store.schema import SCHEMA_VERSION

__all__ = [
    "DELIVERY_STATES",
    "LIVE_STATES",
    "SCHEMA_VERSION",
    "DeadLetterRow",
    "DeliveryRow",
    "DeliveryState",
    "FiredMark",
    "Outbox",
    "OutboxOverview",
    "OutboxStats",
    "PreparedRows",
    "PruneResult",
    "RunRecord",
    "StagedBatch",
    "StoreResult",
    "prepare_rows",
]
