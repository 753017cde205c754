"""The Redis Streams source: a consumer group through FastStream, with claiming."""

from brew_bridge.sources.redis.source import SOURCE, build_redis_source, redis_record

__all__ = ["SOURCE", "build_redis_source", "redis_record"]
