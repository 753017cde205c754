"""The worker: the sources, the dispatcher, the poller and the HTTP server in one process.

:class:`Worker` assembles the parts from a :class:`~brew_bridge.config.BridgeConfig` and
runs them in one event loop until asked to stop. The sources are the Kafka consumer
(when routes read topics) and every queue source routes read (``sources:``), run as one
part. Stopping is graceful, ordered and bounded by ``shutdown.grace_seconds``: the
source commits what is durable and leaves the group; the dispatcher releases the rows of
fires not sent yet at once (claimed, or waiting for a fire budget slot) and waits only
for requests already on the wire, while the poller ends its cycle; the publishers flush,
the servers stop and the outbox closes last. A part still busy when the grace period
ends is cancelled (a fire cut off so is released: its key fires again next start), so
the process is gone before an orchestrator's own grace period ends and it is killed.

``once=True`` (``brew-bridge run --once``) is the batch mode for tests and jobs: the
Kafka source reads until the group's committed offsets reach the end of every partition
of its topics (another live member's partitions included: it raises naming them when
they do not), a queue source until nothing arrived for a second; then the worker waits
until every queued delivery is fired or dead and every run is at an end, and returns a
:class:`RunSummary`. With ``consume=False`` no consumer starts: the worker only delivers
what the outbox already holds (tests without a broker; ``brew-bridge drain`` also drops
the webhook sources).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from starlette.applications import Starlette

from brew_bridge.asyncapi import asyncapi_routes
from brew_bridge.config import BridgeConfig, compiled_routes
from brew_bridge.config.webhooks import require_webhook_secrets
from brew_bridge.core.authgate import AuthGate
from brew_bridge.core.circuit import Circuit
from brew_bridge.core.dispatcher import Dispatcher
from brew_bridge.core.health import OutboxHealth
from brew_bridge.core.intake import Intake
from brew_bridge.core.poller import Poller
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import BridgeError
from brew_bridge.events import SourceRecord
from brew_bridge.observe.metrics import Metrics
from brew_bridge.observe.server import HttpServer, ReadinessCheck, build_app, failing_checks
from brew_bridge.observe.status import (
    NEWEST_DEAD_LETTERS,
    BudgetLine,
    LaneStatus,
    StatusSnapshot,
    status_routes,
)
from brew_bridge.observe.summary import RunSummary
from brew_bridge.sinks.kafka import KafkaSinks
from brew_bridge.sources.intake import source_intake
from brew_bridge.sources.kafka.source import KafkaObserver, build_kafka_source
from brew_bridge.sources.registry import Sources, build_queue_sources
from brew_bridge.sources.webhooks import SOURCE as WEBHOOK
from brew_bridge.sources.webhooks import WebhookSource, webhook_routes
from brew_bridge.store import Outbox, PruneResult, StoreResult
from brew_bridge.targets.registry import api_key, open_target, target_settings
from brew_bridge.typing import Clock, PullSource, ResultSink

__all__ = ["Worker"]

log = structlog.get_logger(__name__)

_STATS_INTERVAL = 5.0  # seconds between refreshes of the outbox gauges
_PRUNE_INTERVAL = 3600.0  # seconds between prunes of finished work (outbox.retention_seconds)
_DONE_CHECK_INTERVAL = 0.1  # --once: how often to look whether everything has ended
# Of the grace period, what is kept for the parts that stop after the fires (the sinks'
# flush, the servers): at most this many seconds, at most a quarter of it.
_STOP_RESERVE = 2.0
_CANCEL_WAIT = 1.0  # seconds a part cancelled at the end of the grace period gets to end
# The budgets the status page shows: what the bridge spends per event and per run.
_SHOWN_POLICIES = ("fire", "run_read")


class _WakeDispatchers(KafkaObserver):
    """New deliveries stored: the dispatchers look now instead of after their idle wait."""

    def __init__(self, lanes: Sequence[_Lane]) -> None:
        self._lanes = lanes

    def on_batch_stored(self, records: Sequence[SourceRecord], result: StoreResult) -> None:
        if result.inserted:
            for lane in self._lanes:
                lane.dispatcher.wake()


@dataclass
class _Lane:
    """One target's parts: its fires, its reads, its auth gate."""

    name: str
    title: str
    gate: AuthGate
    budgets: RateBudgets
    dispatcher: Dispatcher
    poller: Poller

    def status(self) -> LaneStatus:
        """Its circuit and budgets, for the status page."""
        now = self.budgets.now()
        lines = []
        for policy in _SHOWN_POLICIES:
            window = self.budgets.window(policy)
            lines.append(
                BudgetLine(policy, window.used(now), window.effective_limit, window.window)
            )
        return LaneStatus(
            target=self.name,
            title=self.title,
            circuit=str(self.gate.circuit.state),
            problem=self.gate.reason(),
            budgets=tuple(lines),
        )


class Worker:
    """One bridge process. Build, then ``await run(stop)``."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        consume: bool = True,
        metrics: Metrics | None = None,
        env: Mapping[str, str] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.config = config
        self.consume = consume
        self.metrics = metrics if metrics is not None else Metrics()
        # One lane per target the routes fire; each needs its key (a missing one fails here).
        self._keys = {name: api_key(config, name, env) for name in _targets_of(config)}
        require_webhook_secrets(config.webhooks)
        self._clock = clock
        self._server: HttpServer | None = None
        self._webhook_server: HttpServer | None = None
        self._source_task: asyncio.Task[object] | None = None
        self._outbox: Outbox | None = None
        # The status page reads through a connection of its own, on a worker thread: it
        # never waits for the lock of the one the dispatchers and the poller share, and
        # (reads only, WAL) never takes the file's write lock.
        self._status_reader: Outbox | None = None
        self._readiness: Mapping[str, ReadinessCheck] = {}
        self._lanes: list[_Lane] = []
        self._health = OutboxHealth()
        self.started = asyncio.Event()  # set once the HTTP server listens
        self.summary: RunSummary | None = None

    @property
    def port(self) -> int:
        """The HTTP server's port (after :attr:`started`)."""
        if self._server is None:
            raise RuntimeError("the worker has not started")
        return self._server.port

    @property
    def webhook_port(self) -> int:
        """The port ``POST /webhooks/{source}`` is served on (after :attr:`started`)."""
        if self._webhook_server is not None:
            return self._webhook_server.port
        return self.port

    @property
    def in_flight(self) -> int:
        """Deliveries the dispatcher holds now (fires under way, outcomes to record)."""
        return sum(lane.dispatcher.in_flight for lane in self._lanes)

    def wake(self) -> None:
        """Deliveries were stored by something else than this worker's source (an embedding
        application, a benchmark's feeder): fire them now, not after the idle wait."""
        for lane in self._lanes:
            lane.dispatcher.wake()

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> RunSummary:
        """Run until ``stop`` is set (or, with ``once``, until everything has ended)."""
        began = self._clock()
        cfg = self.config
        outbox = Outbox.open(cfg.outbox.path, synchronous=cfg.outbox.synchronous)
        self._outbox = outbox
        try:
            self._status_reader = Outbox.open(cfg.outbox.path, synchronous=cfg.outbox.synchronous)
            async with contextlib.AsyncExitStack() as targets:
                await self._run_parts(targets, outbox, stop, once=once)
        finally:
            self._refresh_stats()
            if self._status_reader is not None:
                self._status_reader.close()
            outbox.close()
        self.summary = RunSummary.from_metrics(self.metrics, self._clock() - began)
        return self.summary

    async def _lane(
        self,
        name: str,
        outbox: Outbox,
        targets: contextlib.AsyncExitStack,
        results: ResultSink | None,
    ) -> _Lane:
        """Open target ``name`` (closed with ``targets``) and build its parts."""
        cfg = self.config
        settings = target_settings(cfg, name)
        limits = settings.rate_limits
        shared = None
        if limits.shared is not None:
            # Imported only when set: redis.asyncio costs ~0.1 s of every start.
            from brew_bridge.shared_limit import RedisSharedWindow

            shared = RedisSharedWindow(limits.shared, target=name, api_key=self._keys[name])
            targets.push_async_callback(shared.close)
        budgets = RateBudgets(
            limits,
            self.metrics,
            target=name,
            retry_after_cap=settings.retry.retry_after_cap_seconds,
            shared=shared,
        )
        targets.push_async_callback(budgets.settled)  # before the shared window closes
        target = await targets.enter_async_context(
            open_target(
                name,
                cfg,
                api_key=self._keys[name],
                budgets=budgets,
                metrics=self.metrics,
                clock=self._clock,
            )
        )
        gate = AuthGate(
            Circuit(probe_interval=cfg.dispatcher.auth_probe_seconds),
            self.metrics,
            target=name,
            title=target.title,
            hint=target.auth_hint,
        )
        brew = name == "brew"
        dispatcher = Dispatcher(
            outbox,
            target,
            config=cfg.dispatcher,
            retry=settings.retry,
            metrics=self.metrics,
            gate=gate,
            health=self._health,
            clock=self._clock,
            # A request on the wire ends within the target's timeout; the stop also ends
            # within shutdown.grace_seconds (stop_by).
            drain_timeout=settings.timeout_seconds + 5.0,
            # Longer than any fire may take: a wait for a budget slot, then the request.
            lease_seconds=2 * (limits.fire.window_seconds + settings.timeout_seconds),
            # Closed at stop: fires waiting for a slot were not sent, they let go at once.
            budgets=budgets,
            # Only Brew keeps Idempotency-Keys for a while (and forgets them).
            key_window=cfg.brew.idempotency_window_seconds if brew else math.inf,
            key_margin=cfg.brew.idempotency_margin_seconds if brew else 0.0,
        )
        poller = Poller(
            outbox,
            target,
            config=cfg.poller,
            read_limit=limits.run_read,
            metrics=self.metrics,
            gate=gate,
            health=self._health,
            results=results,
            deadlines={
                r.name: r.run_deadline_seconds
                for r in cfg.routes
                if r.run_deadline_seconds and r.target == name
            },
            clock=self._clock,
        )
        return _Lane(name, target.title, gate, budgets, dispatcher, poller)

    async def _run_parts(
        self,
        targets: contextlib.AsyncExitStack,
        outbox: Outbox,
        stop: asyncio.Event,
        *,
        once: bool,
    ) -> None:
        cfg = self.config
        # The DLQ and result topics exist only where Kafka is a source.
        sinks = await KafkaSinks.start(cfg.kafka, outbox, self.metrics) if self.consume else None
        results = sinks.results if sinks is not None else None
        lanes = [await self._lane(name, outbox, targets, results) for name in self._keys]
        self._lanes = lanes
        # A config whose routes all read webhooks runs no consumer (and needs no broker).
        source = self._source(outbox, lanes) if self.consume else None
        webhooks = self._webhooks(outbox, lanes)

        stop_source, stop_fire, stop_poll = asyncio.Event(), asyncio.Event(), asyncio.Event()
        if webhooks is not None:
            await webhooks[0].start()
        webhook_app = webhook_routes(webhooks[1]) if webhooks is not None else []
        apart = webhooks is not None and cfg.webhooks.port is not None
        warnings = self._warnings(webhooks[1] if webhooks is not None else None)
        self._readiness = self._checks(source)
        server = HttpServer(
            build_app(
                self.metrics,
                self._readiness,
                routes=[
                    *status_routes(partial(self._status, warnings)),
                    # Built from the config when first asked; the brokers are never connected.
                    *asyncapi_routes(partial(_asyncapi_document, cfg, outbox)),
                    *([] if apart else webhook_app),
                ],
                warnings=warnings,
            ),
            cfg.server.host,
            cfg.server.port,
        )
        await server.start()
        self._server = server
        if apart:
            self._webhook_server = HttpServer(
                Starlette(routes=webhook_app),
                cfg.webhooks.host or cfg.server.host,
                cfg.webhooks.port or 0,
            )
            await self._webhook_server.start()
        tasks: dict[str, asyncio.Task[object]] = {}

        def spawn(name: str, coro: Coroutine[object, None, object]) -> asyncio.Task[object]:
            task = asyncio.create_task(coro, name=name)
            tasks[name] = task
            return task

        try:
            if source is not None:
                self._source_task = spawn(
                    "source", source.drain() if once else source.run(stop_source)
                )
            for lane in lanes:
                spawn(f"dispatcher:{lane.name}", lane.dispatcher.run(stop_fire))
                spawn(f"poller:{lane.name}", lane.poller.run(stop_poll))
            spawn("stats", self._stats_loop(stop_poll))
            if sinks is not None and sinks.dead_letters is not None:
                spawn("dlq", sinks.dead_letters.run(stop_poll))
            self.started.set()
            log.info(
                "brew-bridge running",
                port=server.port,
                consume=source is not None,
                webhooks=sorted(cfg.webhooks.sources) if webhooks is not None else [],
                once=once,
                outbox=str(outbox.path),
                targets=[lane.name for lane in lanes],
            )
            for name, text in warnings.items():
                log.warning("not_safe", part=name, warning=text)
            await self._until_stopped(stop, tasks, once=once)
        finally:
            # Ordered: no new events, then no new fires and no more reads; all of it
            # within the grace period (an orchestrator kills the process after its own).
            grace = cfg.shutdown.grace_seconds
            began = time.monotonic()
            deadline = began + grace
            stop_source.set()
            if webhooks is not None:
                webhooks[1].closing = True  # 503: the provider sends it again later
                await webhooks[0].close()  # what senders already handed over is stored
            await self._settle(tasks.get("source"), "source", deadline)
            # Fires not sent are released at once; those on the wire are awaited until
            # the grace period, less what the sinks and servers need after them.
            parts_deadline = deadline - min(_STOP_RESERVE, grace / 4)
            for lane in lanes:
                lane.dispatcher.stop_by(parts_deadline)
            stop_fire.set()
            stop_poll.set()  # the pollers end their cycles meanwhile: reads are not fires
            # The dispatchers cut their own waits off (and release those rows): their
            # tasks are cancelled only as a last resort, at the very end.
            for lane in lanes:
                name = f"dispatcher:{lane.name}"
                await self._settle(tasks.get(name), name, deadline)
            pollers = [f"poller:{lane.name}" for lane in lanes]
            for name in (*pollers, "stats", "dlq"):
                await self._settle(tasks.get(name), name, parts_deadline)
            if sinks is not None:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await sinks.stop()
                except TimeoutError:  # unpublished dead letters are published next start
                    log.warning("the Kafka sinks did not stop within the grace period")
            if self._webhook_server is not None:
                await self._webhook_server.stop()
            await server.stop()
            log.info("brew-bridge stopped", stop_seconds=round(time.monotonic() - began, 3))

    async def _until_stopped(
        self, stop: asyncio.Event, tasks: dict[str, asyncio.Task[object]], *, once: bool
    ) -> None:
        """Wait for ``stop``, for ``once`` to be done, or for a part to die (then re-raise)."""
        stop_waiter = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                watched = {t for n, t in tasks.items() if not (once and n == "source")}
                done, _ = await asyncio.wait(
                    {stop_waiter, *watched},
                    timeout=_DONE_CHECK_INTERVAL if once else None,
                    return_when="FIRST_COMPLETED",
                )
                for task in done - {stop_waiter}:
                    task.result()  # a part that raised stops the worker with its error
                    raise BridgeError(f"{task.get_name()} stopped unexpectedly")
                source = tasks.get("source")
                if source is not None and source.done():
                    source.result()
                if once and await self._all_done(source):
                    log.info("--once: caught up, every delivery fired or dead, every run ended")
                    return
        finally:
            stop_waiter.cancel()

    async def _all_done(self, source: asyncio.Task[object] | None) -> bool:
        if source is not None and not source.done():
            return False
        assert self._outbox is not None
        if self.in_flight:
            return False
        stats = await asyncio.to_thread(self._outbox.stats, self._clock())
        return stats.backlog == 0 and stats.live_runs == 0

    async def _settle(
        self, task: asyncio.Task[object] | None, name: str, deadline: float | None = None
    ) -> None:
        """Wait for a part to end; at ``deadline`` (``time.monotonic()``), cancel it."""
        if task is None:
            return
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            log.warning("part still stopping at the end of the grace period: cancelled", part=name)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=_CANCEL_WAIT)
            if not done:
                log.error("part did not end when cancelled", part=name)
                return
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("part failed while stopping", part=name, exc_info=exc)

    def _source(self, outbox: Outbox, lanes: Sequence[_Lane]) -> PullSource | None:
        """The Kafka source (when routes read topics) and every queue source, as one."""
        routes = compiled_routes(self.config)
        observer = _WakeDispatchers(lanes)
        sources: list[PullSource] = []
        if self.config.topics:
            sources.append(
                build_kafka_source(
                    self.config,
                    routes,
                    outbox,
                    self.metrics,
                    observer=observer,
                    health=self._health,
                )
            )
        sources.extend(
            build_queue_sources(
                self.config, routes, outbox, self.metrics, observer=observer, health=self._health
            )
        )
        if not sources:
            return None
        return sources[0] if len(sources) == 1 else Sources(sources)

    def _webhooks(
        self, outbox: Outbox, lanes: Sequence[_Lane]
    ) -> tuple[Intake, WebhookSource] | None:
        """The webhook sources' intake and handler, when any source is configured."""
        cfg = self.config
        if not cfg.webhooks.sources:
            return None
        intake = source_intake(
            cfg,
            compiled_routes(cfg),
            outbox,
            self.metrics,
            source=WEBHOOK,
            observer=_WakeDispatchers(lanes),
            health=self._health,
            clock=self._clock,
        )
        # A body the source takes must not be too_large for routing: the smaller limit wins.
        limit = min(cfg.webhooks.max_body_bytes, cfg.kafka.max_record_bytes)
        webhooks = cfg.webhooks.model_copy(update={"max_body_bytes": limit})
        return intake, WebhookSource(webhooks, intake, self.metrics, clock=self._clock)

    @staticmethod
    def _warnings(webhooks: WebhookSource | None) -> dict[str, str]:
        """What /readyz shows without failing: ways this config is not safe."""
        unsigned = webhooks.unsigned if webhooks is not None else []
        if not unsigned:
            return {}
        names = ", ".join(unsigned)
        return {"webhooks": f"{names}: scheme none, anyone who can reach the port can send"}

    def _checks(self, source: PullSource | None) -> dict[str, Callable[[], str | None]]:
        def consumer() -> str | None:
            if source is None:
                return None  # not consuming on purpose (--no-consume)
            task = self._source_task
            if task is None or task.done():
                return "the consumer is not running"
            return None

        def outbox() -> str | None:
            return self._health.error

        def circuit() -> str | None:
            if not self._lanes:
                return "starting"
            reasons = [r for r in (lane.gate.reason() for lane in self._lanes) if r]
            return " ".join(reasons) or None

        return {"consumer": consumer, "outbox": outbox, "circuit": circuit}

    async def _status(self, warnings: Mapping[str, str]) -> StatusSnapshot:
        """The status page's snapshot: the outbox read off the event loop, the rest here."""
        reader = self._status_reader
        if reader is None:  # the page is served only while run() runs
            raise BridgeError("the worker is not running")
        now = self._clock()
        # The lanes and the checks are the loop's (not thread-safe): read here, first.
        lanes = [lane.status() for lane in self._lanes]
        fixes = {**failing_checks(self._readiness), **warnings}

        def read() -> StatusSnapshot:
            return StatusSnapshot.of(
                now,
                reader.overview(now, newest=NEWEST_DEAD_LETTERS),
                route_targets={r.name: r.target for r in self.config.routes},
                lanes=lanes,
                fixes=fixes,
            )

        return await asyncio.to_thread(read)

    async def _stats_loop(self, stop: asyncio.Event) -> None:
        pruned_at: float | None = None
        while not stop.is_set():
            await asyncio.to_thread(self._refresh_stats)
            if pruned_at is None or time.monotonic() - pruned_at >= _PRUNE_INTERVAL:
                pruned_at = time.monotonic()
                await asyncio.to_thread(self._prune)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_STATS_INTERVAL)

    def _prune(self) -> None:
        """Delete finished work older than ``outbox.retention_seconds`` (0: keep all)."""
        retention = self.config.outbox.retention_seconds
        if self._outbox is None or retention <= 0:
            return
        try:
            result = self._outbox.prune(self._clock() - retention)
        except BridgeError as exc:
            log.warning("outbox prune failed", error=str(exc))
            return
        if result != PruneResult():
            log.info(
                "outbox pruned",
                deliveries=result.deliveries,
                runs=result.runs,
                dead_letters=result.dead_letters,
                records=result.records,
                retention_seconds=retention,
            )

    def _refresh_stats(self) -> None:
        """Outbox gauges: rows by state, oldest pending age, runs in flight."""
        if self._outbox is None:
            return
        try:
            stats = self._outbox.stats(self._clock())
        except BridgeError as exc:
            log.warning("outbox stats failed", error=str(exc))
            return
        for state, count in stats.deliveries.items():
            self.metrics.outbox_rows.labels(state=state).set(count)
        self.metrics.outbox_oldest_pending_age.set(stats.oldest_pending_age or 0.0)
        self.metrics.runs_in_flight.set(stats.live_runs)


def _targets_of(config: BridgeConfig) -> list[str]:
    """Every target configured under targets:, and Brew unless routes fire only others
    (then no Brew key is needed). A config without routes (deliveries stored by an
    embedding application) fires Brew."""
    brew = not config.routes or any(route.target == "brew" for route in config.routes)
    return sorted({*config.targets, *(["brew"] if brew else [])})


def _asyncapi_document(config: BridgeConfig, outbox: Outbox) -> Mapping[str, Any]:
    # Imported here: the document loads FastStream, which only GET /asyncapi.json needs.
    from brew_bridge.asyncapi import asyncapi_document

    return asyncapi_document(config, outbox=outbox)
