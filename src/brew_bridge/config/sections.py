"""The section models: ``kafka``, ``outbox``, ``brew``, ``dispatcher``, ``poller``,
``server``, ``logging``, ``shutdown``.

Section owners: ``kafka``/``outbox`` → ingest, ``brew``/``dispatcher``/``poller`` →
delivery. The core imports these models alone, so this module imports nothing of the
bridge: no expressions, no targets (``dispatcher.ordering_key``, and
``brew.timeout_seconds`` against the rate-limit windows, are checked where the whole
config is, in :mod:`brew_bridge.config.load`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "NAME",
    "BrewConfig",
    "DispatcherConfig",
    "KafkaConfig",
    "LoggingConfig",
    "OutboxConfig",
    "PollerConfig",
    "RateLimit",
    "RateLimitsConfig",
    "RetryConfig",
    "ServerConfig",
    "SharedLimitConfig",
    "ShutdownConfig",
    "Strict",
]


# A route's or a source's name: it goes into Idempotency-Keys, URLs and metric labels.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


class Strict(BaseModel):
    """The base of every config model: unknown keys are errors (a typo must not pass
    silently), and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(Strict):
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "brew-bridge"
    client_id: str = "brew-bridge"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_batch_records: int = Field(500, ge=1, le=100_000)
    poll_timeout_ms: int = Field(500, ge=1)
    session_timeout_ms: int = Field(10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    max_poll_interval_ms: int = Field(300_000, ge=10_000)
    # A record larger than this is dead-lettered as too_large, not parsed.
    max_record_bytes: int = Field(1_048_576, ge=1)
    # 1: route the next batch in a child process while this one is stored (two cores);
    # 0: route inline.
    routing_workers: int = Field(0, ge=0, le=1)
    # How often each owned partition's end is read for brew_bridge_consumer_lag_records.
    lag_interval_seconds: float = Field(15.0, gt=0)
    # Dead letters are also published here when set (original key and value, reason headers).
    dlq_topic: str | None = None
    # Each run's end is published here when set.
    result_topic: str | None = None


class OutboxConfig(Strict):
    path: str = "brew-bridge.db"
    # FULL: a committed batch survives power loss, not just a process crash; the
    # durability promise (offsets committed only after the outbox) depends on it.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Consumption pauses when rows waiting to fire reach high_water, resumes below low_water.
    high_water: int = Field(50_000, ge=1)
    low_water: int = Field(40_000, ge=0)
    # Finished work older than this is pruned (hourly by the worker); 0 keeps it forever.
    # Must exceed the source topic's retention: a pruned delivery no longer dedupes.
    # 15 days clears Kafka's defaults (retention.ms 7 d + segment.ms 7 d).
    retention_seconds: float = Field(15 * 86400.0, ge=0)
    # A record whose source timestamp is older than retention_seconds (a replay from the
    # earliest offset) may have fired before its key was pruned: dead_letter it as
    # stale_replay, or fire it anyway.
    stale_replay: Literal["dead_letter", "fire"] = "dead_letter"

    @property
    def stale_after_seconds(self) -> float | None:
        """The age past which a record is a stale replay (None: never)."""
        if self.stale_replay == "fire" or self.retention_seconds <= 0:
            return None
        return self.retention_seconds

    @model_validator(mode="after")
    def _water_marks(self) -> OutboxConfig:
        if self.low_water >= self.high_water:
            raise ValueError("low_water must be below high_water")
        return self


class RateLimit(Strict):
    limit: int = Field(ge=1)
    window_seconds: float = Field(60.0, gt=0)


# What a shared limiter's URL may start with (the ``limits`` package's Redis storages).
_SHARED_SCHEMES = ("redis://", "rediss://")


class SharedLimitConfig(Strict):
    """A moving window in Redis that every replica using the key takes its slots from."""

    # Secret (it may hold a password): logs and errors show it without user and password.
    redis_url: SecretStr

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: SecretStr) -> SecretStr:
        text = url.get_secret_value()
        if not text.startswith(_SHARED_SCHEMES):
            scheme = text.partition("://")[0] if "://" in text else "no scheme"
            raise ValueError(
                f"the shared rate limiter needs a Redis URL, not {scheme!r}: write "
                "redis://HOST:6379/0 (rediss:// for TLS), or remove "
                "rate_limits.shared to pace from the server's headers alone"
            )
        return url


class RateLimitsConfig(Strict):
    """Per-policy budgets, matching Brew's per-key, per-route limits."""

    fire: RateLimit = RateLimit(limit=60, window_seconds=60)
    run_read: RateLimit = RateLimit(limit=100, window_seconds=60)
    trigger_read: RateLimit = RateLimit(limit=100, window_seconds=60)
    # null: each replica paces from the server's X-RateLimit-* headers alone.
    shared: SharedLimitConfig | None = None


class RetryConfig(Strict):
    max_attempts: int = Field(10, ge=1)
    max_age_seconds: float = Field(24 * 3600.0, gt=0)
    base_delay_seconds: float = Field(0.5, gt=0)
    max_delay_seconds: float = Field(300.0, gt=0)
    # Retry-After above this is clamped (later SDKs cap at 60 s).
    retry_after_cap_seconds: float = Field(300.0, gt=0)
    # 422 NO_PUBLISHED_AUTOMATION: someone may be publishing; retry slowly, then give up.
    no_published_automation_delay_seconds: float = Field(60.0, gt=0)
    no_published_automation_max_seconds: float = Field(3600.0, ge=0)


class BrewConfig(Strict):
    base_url: str = "http://127.0.0.1:8787/api"
    # Never set in YAML: read from BREW_API_KEY or api_key_file.
    api_key: SecretStr | None = Field(None, exclude=True)
    api_key_file: str | None = None
    brand_id: str | None = None
    # At most the shortest rate_limits window (checked in config/load.py, which places
    # the problem: this module imports nothing of the bridge).
    timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    max_connections: int = Field(20, ge=1)
    # "auto" reads run details with ?automationRunId= and switches to /runs/{id} if refused.
    api_shape: Literal["auto", "9.3", "10"] = "auto"
    # How long Brew remembers an Idempotency-Key. A delivery first tried longer ago than
    # this, less the margin, is looked up (its runs listed) before it fires again.
    idempotency_window_seconds: float = Field(86400.0, gt=0)
    idempotency_margin_seconds: float = Field(3600.0, ge=0)
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    retry: RetryConfig = RetryConfig()


class DispatcherConfig(Strict):
    concurrency: int = Field(8, ge=1, le=256)
    # JMESPath over the mapped payload; rows with the same value fire in outbox order.
    # null turns ordering off. Checked by BridgeConfig (this module compiles nothing).
    ordering_key: str | None = "email"
    # route: a row waiting (a 422, a long 429) holds back only its own route's later rows
    # with that key; global: every route's.
    ordering_scope: Literal["route", "global"] = "route"
    idle_poll_seconds: float = Field(0.2, gt=0)
    # While Brew refuses the key (401/403), one request per interval probes it again.
    auth_probe_seconds: float = Field(30.0, gt=0)


class PollerConfig(Strict):
    interval_seconds: float = Field(2.0, gt=0)
    # A run not at an end this long after its fire becomes timed_out. Brew automations
    # may wait days between steps (a drip campaign's "wait 7 days"): 8 days by default;
    # a route can set its own (routes[].run_deadline_seconds).
    run_deadline_seconds: float = Field(8 * 86400.0, gt=0)
    cancel_on_deadline: bool = False
    # Share of the run-read budget the poller may use; the rest is left for other reads.
    read_budget_share: float = Field(1.0, gt=0, le=1.0)
    # Fetch node logs for failed / timed-out / canceled runs before dead-lettering them.
    fetch_logs: bool = True


class ServerConfig(Strict):
    host: str = "0.0.0.0"
    port: int = Field(9400, ge=0, le=65535)


class LoggingConfig(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"


class ShutdownConfig(Strict):
    # SIGTERM: fires not sent yet go back to pending at once; requests already on the
    # wire are awaited, and the whole stop (source, fires, poller, sinks, server) ends
    # within this many seconds. Below Kubernetes' default 30 s terminationGracePeriod,
    # which SIGKILLs after it. An answer cut off here is fired again next start (same key).
    grace_seconds: float = Field(20.0, gt=0)
