"""The ``sources:`` section: the queue and stream sources, by kind and name.

Every kind has the same shape: ``sources.<kind>.<name>: {url, <where to read>, ...}``,
and a route reads one by naming it ``<kind>.<name>`` under ``routes[].sources``. The
record's stream is the source's name, so routes, dead letters and ``dlq redrive`` see
the same coordinates whatever the broker.

The broker URL may carry a password (``amqp://user:pass@host``): it is a secret here
(never printed, never logged); :func:`redacted_url` is what logs and errors show.
"""

from __future__ import annotations

import socket
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from brew_bridge.config.problems import config_problem
from brew_bridge.config.sections import NAME, Strict

__all__ = [
    "QUEUE_KINDS",
    "NatsSourceConfig",
    "QueueSourceConfig",
    "RabbitSourceConfig",
    "RedisSourceConfig",
    "SourcesConfig",
    "redacted_url",
]

QueueKind = Literal["rabbit", "nats", "redis"]
QUEUE_KINDS: Final[tuple[QueueKind, ...]] = ("rabbit", "nats", "redis")

_NAME_FIX = "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"


def redacted_url(url: SecretStr | str) -> str:
    """``scheme://host:port/path`` without the user, the password and the query."""
    text = url.get_secret_value() if isinstance(url, SecretStr) else url
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<an unparsable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class QueueSourceConfig(Strict):
    """What every queue source has (each kind gives ``url`` its local default)."""

    url: SecretStr
    # Most records stored per outbox transaction (records larger than
    # kafka.max_record_bytes are too_large dead letters, whatever their source).
    max_batch_records: int = Field(500, ge=1, le=100_000)
    # 1: route the next batch in a child process while this one is stored (a second
    # core, ~50 MB more); 0: route inline. As kafka.routing_workers.
    routing_workers: int = Field(0, ge=0, le=1)


class RabbitSourceConfig(QueueSourceConfig):
    """A RabbitMQ queue (declared durable if missing), optionally bound to an exchange."""

    url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    queue: str = Field(min_length=1, max_length=255)
    # Bind the queue to this exchange (declared durable, of exchange_type) when set.
    exchange: str | None = None
    exchange_type: Literal["direct", "topic", "fanout", "headers"] = "topic"
    routing_key: str = "#"
    # Messages RabbitMQ hands over before any is acknowledged: what the bridge holds in RAM.
    prefetch_count: int = Field(1000, ge=1, le=65_535)
    # A record that became one of our dead letters is rejected (requeue=False) to this
    # exchange once the dead letter is stored; null: it is acknowledged instead.
    dead_letter_exchange: str | None = None


class NatsSourceConfig(QueueSourceConfig):
    """A durable pull consumer on a JetStream stream."""

    url: SecretStr = SecretStr("nats://127.0.0.1:4222")
    stream: str = Field(min_length=1)
    # The subjects the stream holds (created with them if missing), and the one read.
    subjects: list[str] = Field(min_length=1)
    subject: str | None = None  # null: the stream's first subject
    durable: str = "brew-bridge"
    # A message not acknowledged this long after delivery is delivered again (a crash).
    ack_wait_seconds: float = Field(30.0, gt=0)
    # How long one fetch waits for messages.
    fetch_timeout_seconds: float = Field(0.5, gt=0)
    # How long the first connection may take (retried every 2 s) before the source fails
    # to start; once connected, a lost connection is retried without end.
    connect_timeout_seconds: float = Field(10.0, gt=0)


class RedisSourceConfig(QueueSourceConfig):
    """A Redis stream read by a consumer group."""

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    stream: str = Field(min_length=1)
    group: str = "brew-bridge"
    # This member's name in the group: unique per replica; null: the host name (a pod's
    # name), so replicas differ without a setting each.
    consumer: str | None = Field(None, min_length=1)
    # Entries another member read and left unacknowledged this long are claimed (its
    # crash): at least the longest time a batch takes to be stored.
    min_idle_seconds: float = Field(30.0, gt=0)
    # How long one read blocks waiting for entries, in milliseconds.
    polling_interval_ms: int = Field(500, ge=1)
    # Where a group the bridge creates starts: the stream's first entry (earliest) or
    # only entries added after it (latest). An existing group keeps its place.
    start_at: Literal["earliest", "latest"] = "earliest"
    # The entry field holding the event (raw bytes) and the one holding its key (null:
    # none); every other field is a header. FastStream's own envelope is read as well.
    value_field: str = Field("value", min_length=1)
    key_field: str | None = Field("key", min_length=1)

    @property
    def member(self) -> str:
        """This bridge's consumer name in the group."""
        return self.consumer or socket.gethostname() or "brew-bridge"


class SourcesConfig(Strict):
    """Queue and stream sources by kind, then by name (``routes[].sources: [kind.name]``)."""

    rabbit: dict[str, RabbitSourceConfig] = Field(default_factory=dict)
    nats: dict[str, NatsSourceConfig] = Field(default_factory=dict)
    redis: dict[str, RedisSourceConfig] = Field(default_factory=dict)

    @field_validator("rabbit", "nats", "redis")
    @classmethod
    def _names(cls, sources: dict[str, QueueSourceConfig]) -> dict[str, QueueSourceConfig]:
        for name in sources:
            if not NAME.fullmatch(name):
                raise config_problem(f"{name!r} is not a usable source name", _NAME_FIX, (name,))
        return sources

    def declared(self) -> dict[str, QueueSourceConfig]:
        """Every source as ``kind.name``."""
        return {
            f"{kind}.{name}": config
            for kind in QUEUE_KINDS
            for name, config in getattr(self, kind).items()
        }
