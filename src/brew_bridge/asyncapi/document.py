"""The AsyncAPI 3.0 document of what a config subscribes to, as FastStream describes it.

Every queue source a route reads is built exactly as ``run`` builds it (its broker and
subscriber declared, never connected) and described alone; the Kafka topics, read by a
hand-driven aiokafka consumer, are described through a FastStream ``KafkaBroker`` that
exists only for this (never started): one subscriber per topic a route reads. The parts
are merged by :func:`~.merge.merge_documents`, each channel and operation described by the
routes that read it.

Webhook sources are left out: they are HTTP requests the bridge answers, not broker
subscriptions, and FastStream's HTTP channels carry no server (in 3.0: "on every server",
i.e. on the brokers) and no message.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from brew_bridge.asyncapi.merge import Document, Part, merge_documents
from brew_bridge.config import BridgeConfig, compiled_routes
from brew_bridge.errors import BridgeError
from brew_bridge.mapping.routing import CompiledRoutes
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.registry import build_queue_sources
from brew_bridge.store import Outbox
from brew_bridge.version import __version__

__all__ = ["asyncapi_document"]

KAFKA = "kafka"


def asyncapi_document(config: BridgeConfig, *, outbox: Outbox | None = None) -> Document:
    """The document of ``config``'s subscriptions. Call it in a running event loop (the
    sources' feeds read its clock); ``outbox`` is only handed to the sources' intakes,
    which never run here (None: a throwaway one in a temporary directory). A config
    without routes (an embedding application stores the deliveries) subscribes to
    nothing: no channels."""
    parts = [] if not config.routes else _parts(config, outbox)
    document = merge_documents(
        parts,
        {
            "title": "brew-bridge",
            "version": __version__,
            "description": "The queues and topics this bridge consumes; each event it "
            "routes becomes a run of the automation its route names.",
        },
    )
    _refuse_passwords(document, config)
    return document


def _parts(config: BridgeConfig, outbox: Outbox | None) -> list[Part]:
    """One part per queue source a route reads, and one for the Kafka topics."""
    routes = compiled_routes(config)
    with _outbox(outbox) as store:
        sources = build_queue_sources(config, routes, store, Metrics())
    parts = []
    for source in sources:
        document = _generated(source.broker)
        # One subscription per source: its channel is known by the source's name.
        channels = {key: source.name for key in document.get("channels", {})}
        parts.append(
            Part(source.name, document, channels, {source.name: _read_by(routes, source.name)})
        )
    topics = sorted(routes.streams_of(KAFKA))
    if topics:
        parts.append(_kafka_part(config, routes, topics))
    return parts


def _kafka_part(config: BridgeConfig, routes: CompiledRoutes, topics: list[str]) -> Part:
    servers = [s.strip() for s in config.kafka.bootstrap_servers.split(",") if s.strip()]
    broker = KafkaBroker(servers, logger=None)
    for topic in topics:
        name = f"{KAFKA}.{topic}"

        async def handle(event: Any) -> None:  # never called: the broker never starts
            del event

        broker.subscriber(topic, group_id=config.kafka.group_id, title=name)(handle)
    document = _generated(broker)
    channels = {key: f"{KAFKA}.{channel['address']}" for key, channel in _channels(document)}
    descriptions = {f"{KAFKA}.{t}": _read_by(routes, f"{KAFKA}.{t}") for t in topics}
    return Part(KAFKA, document, channels, descriptions)


def _channels(document: Document) -> Iterator[tuple[str, dict[str, Any]]]:
    channels: dict[str, dict[str, Any]] = document.get("channels", {})
    return iter(channels.items())


def _generated(broker: Any) -> Document:
    """FastStream's 3.0 document of ``broker`` alone, as plain JSON data."""
    spec = AsyncAPI(broker, schema_version="3.0.0").to_specification()
    document: Document = json.loads(spec.to_json())
    return document


def _read_by(routes: CompiledRoutes, qualified: str) -> str:
    kind, _, stream = qualified.partition(".")
    names = sorted(route.name for route in routes.by_stream.get((kind, stream), ()))
    return f"{qualified}: read by the route{'s' if len(names) != 1 else ''} {', '.join(names)}"


@contextlib.contextmanager
def _outbox(outbox: Outbox | None) -> Iterator[Outbox]:
    if outbox is not None:
        yield outbox
        return
    with tempfile.TemporaryDirectory(prefix="brew-bridge-asyncapi-") as directory:
        store = Outbox.open(Path(directory) / "unused.db", synchronous="NORMAL")
        try:
            yield store
        finally:
            store.close()


def _refuse_passwords(document: Document, config: BridgeConfig) -> None:
    """A source whose document would show its URL's password is a bug here: fail loudly
    rather than serve the secret (a server is redacted, but a kind could put the URL
    elsewhere, a description say)."""
    text = json.dumps(document)
    for qualified, source in config.sources.declared().items():
        url = getattr(source, "url", None)
        secret = url.get_secret_value() if url is not None else ""
        password = urlsplit(secret).password
        # As a URL shows it (user:password@): a short password may be any word elsewhere.
        if password and f":{password}@" in text:
            raise BridgeError(
                f"asyncapi: the document would show the password of sources.{qualified}.url; "
                "this is a bug of the source's kind, report it (the document is not served)"
            )
