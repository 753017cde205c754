"""The RabbitMQ source: a queue (optionally bound to an exchange) through FastStream."""

from brew_bridge.sources.rabbit.source import SOURCE, build_rabbit_source, rabbit_record

__all__ = ["SOURCE", "build_rabbit_source", "rabbit_record"]
