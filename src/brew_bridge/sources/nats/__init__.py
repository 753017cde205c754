"""The NATS JetStream source: a durable pull consumer on a stream through FastStream."""

from brew_bridge.sources.nats.source import SOURCE, build_nats_source, nats_record

__all__ = ["SOURCE", "build_nats_source", "nats_record"]
