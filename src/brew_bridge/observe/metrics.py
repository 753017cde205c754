"""Every Prometheus metric brew-bridge exports, defined once.

Naming follows Prometheus conventions: ``brew_bridge_`` prefix, base units (seconds),
``_total`` on counters. Labels carry routes, reasons, codes and statuses — never an
email, a payload value, an idempotency key or a secret.

Components receive a :class:`Metrics` (dependency injection); tests build one on a
fresh ``CollectorRegistry`` and read values with ``registry.get_sample_value``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RUN_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)


class Metrics:
    """The bridge's metrics, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        # ingest
        self.events_consumed = Counter(
            "brew_bridge_events_consumed_total",
            "Records read from a source.",
            ["source"],
            registry=r,
        )
        self.events_routed = Counter(
            "brew_bridge_events_routed_total",
            "Events mapped by a route and queued in the outbox.",
            ["source", "route"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "brew_bridge_events_duplicate_total",
            "Routed events whose (route, idempotency key) was already in the outbox.",
            ["source", "route"],
            registry=r,
        )
        self.events_dropped = Counter(
            "brew_bridge_events_dropped_total",
            "Events dropped on purpose (no route matched and no_route is 'drop').",
            ["source", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "brew_bridge_dead_letters_total",
            "Dead letters written, by stage (ingest, fire, run), route and reason code.",
            ["stage", "route", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "brew_bridge_consumer_lag_records",
            "Records of a partition not yet durable in the outbox: its end minus the group's"
            " committed offset, read from the broker every kafka.lag_interval_seconds.",
            ["stream", "partition"],
            registry=r,
        )
        self.consumer_paused = Gauge(
            "brew_bridge_consumer_paused",
            "1 while consumption is paused because the outbox is above its high-water mark.",
            registry=r,
        )

        self.webhook_requests = Counter(
            "brew_bridge_webhook_requests_total",
            "Webhook deliveries received, by source and outcome (stored, invalid_json, "
            "bad_signature, missing_signature, stale_timestamp, future_timestamp, too_large, "
            "timeout, aborted, backpressure, unavailable, stopping, unknown_source).",
            ["source", "outcome"],
            registry=r,
        )
        self.webhook_request_duration = Histogram(
            "brew_bridge_webhook_request_duration_seconds",
            "From a webhook's first byte of body to its answer (the outbox commit included).",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        # targets' HTTP
        self.http_requests = Counter(
            "brew_bridge_http_requests_total",
            "Requests sent to a target's API, by endpoint and HTTP status ('error' for no answer).",
            ["target", "endpoint", "status"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "brew_bridge_http_request_duration_seconds",
            "Target API request duration.",
            ["target", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_budget_wait = Histogram(
            "brew_bridge_rate_budget_wait_seconds",
            "Time spent waiting for the rate budget before a request.",
            ["target", "policy"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_budget_remaining = Gauge(
            "brew_bridge_rate_budget_remaining",
            "Requests left in the current window, as the target or the local limiter last said.",
            ["target", "policy"],
            registry=r,
        )
        self.rate_budget_shared_errors = Counter(
            "brew_bridge_rate_budget_shared_errors_total",
            "Requests granted by the local window alone because the shared limiter failed.",
            ["target", "policy"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "brew_bridge_circuit_open",
            "1 while firing is stopped by an authentication or permission failure.",
            ["target"],
            registry=r,
        )

        # dispatcher
        self.fires = Counter(
            "brew_bridge_fires_total",
            "Fire attempts by route and result code (TRIGGERED, IDEMPOTENT_REPLAY, an error code).",
            ["target", "route", "code"],
            registry=r,
        )
        self.fire_retries = Counter(
            "brew_bridge_fire_retries_total",
            "Fires scheduled for another attempt, by route and reason.",
            ["target", "route", "reason"],
            registry=r,
        )
        self.event_to_fire = Histogram(
            "brew_bridge_event_to_fire_seconds",
            "Delay from an event entering the outbox to the target accepting its fire.",
            ["target", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        # poller
        self.runs_started = Counter(
            "brew_bridge_runs_started_total",
            "Automation runs started by accepted fires.",
            ["target", "route"],
            registry=r,
        )
        self.runs_terminal = Counter(
            "brew_bridge_runs_terminal_total",
            "Runs reaching an end: completed, partially_completed, failed, canceled, timed_out.",
            ["target", "route", "status"],
            registry=r,
        )
        self.run_duration = Histogram(
            "brew_bridge_run_duration_seconds",
            "Delay from a fire being accepted to its run reaching an end.",
            ["target", "route"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.runs_in_flight = Gauge(
            "brew_bridge_runs_in_flight",
            "Runs fired and not yet at an end.",
            registry=r,
        )
        self.run_reads = Counter(
            "brew_bridge_run_reads_total",
            "Run read requests by mode (list, detail) and how many runs they resolved.",
            ["target", "mode"],
            registry=r,
        )
        self.stuck_runs_canceled = Counter(
            "brew_bridge_stuck_runs_canceled_total",
            "Live runs the target canceled because their stage stopped moving (Boring "
            "Marketing's stuck runs); each one's event fires again, up to the target's limit.",
            ["target"],
            registry=r,
        )
        self.run_stages = Gauge(
            "brew_bridge_run_stages",
            "Live runs by the stage the target last showed them in ('none': queued, or a "
            "pipeline that reports no stage).",
            ["target", "stage"],
            registry=r,
        )
        self.run_stages_by_brand = Gauge(
            "brew_bridge_run_stages_by_brand",
            "Live runs by stage and brand, exported only with the target's stage_brand_label on.",
            ["target", "stage", "brand"],
            registry=r,
        )

        # outbox
        self.outbox_rows = Gauge(
            "brew_bridge_outbox_rows",
            "Outbox rows by state.",
            ["state"],
            registry=r,
        )
        self.outbox_oldest_pending_age = Gauge(
            "brew_bridge_outbox_oldest_pending_age_seconds",
            "Age of the oldest row waiting to be fired (pending or retry_wait).",
            registry=r,
        )

        # publishing to Kafka
        self.kafka_publishes = Counter(
            "brew_bridge_kafka_publishes_total",
            "Records published to the result topic or the DLQ topic, by outcome.",
            ["topic_kind", "outcome"],
            registry=r,
        )
