"""The Redis Streams source: a consumer group through FastStream, with claiming."""

from brew_bridge.sources.redis.record import SOURCE, redis_record
from brew_bridge.sources.redis.source import build_redis_source

__all__ = ["SOURCE", "build_redis_source", "redis_record"]
