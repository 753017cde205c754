"""The sources: section (queue and stream sources): every problem names the file, the
key, the line and the fix; a broker password is never quoted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from brew_bridge.config import compiled_routes, load_config
from brew_bridge.config.queues import redacted_url
from brew_bridge.errors import ConfigError, ConfigProblem

WriteConfig = Callable[[str], Path]

CONFIG = """
sources:
  rabbit:
    signups: {url: "amqp://bridge:s3cret-pass@rabbit:5672/", queue: signups}
  nats:
    orders: {stream: ORDERS, subjects: [orders.>]}
  redis:
    payments: {stream: payments, consumer: pod-0}
triggers:
  tri_welcome:
    payload_schema:
      type: object
      fields: [{key: email, type: string, required: true}]
routes:
  - name: welcome
    sources: [rabbit.signups, nats.orders]
    topics: [signups]
    trigger: tri_welcome
    payload: {email: event.data.email}
  - name: paid
    sources: [redis.payments]
    trigger: tri_welcome
    payload: {email: event.data.email}
"""


def problems_of(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value.problems


def test_routes_read_queue_sources_by_kind_and_name(write_config: WriteConfig) -> None:
    config = load_config(write_config(CONFIG), env={})
    routes = compiled_routes(config)
    assert routes.streams_of("rabbit") == {"signups"}
    assert routes.streams_of("nats") == {"orders"}
    assert routes.streams_of("redis") == {"payments"}
    assert routes.streams_of("kafka") == {"signups"}
    assert config.sources.redis["payments"].member == "pod-0"
    assert set(config.sources.declared()) == {"rabbit.signups", "nats.orders", "redis.payments"}


def test_an_undeclared_source_is_named_with_the_closest_one(write_config: WriteConfig) -> None:
    text = CONFIG.replace("sources: [redis.payments]", "sources: [redis.payment]")
    (problem,) = problems_of(write_config(text))
    assert problem.key_path == "routes[1].sources[0]"
    assert "'redis.payment' is not declared under sources.redis" in problem.message
    assert "redis.payments" in problem.fix
    assert problem.line is not None


@pytest.mark.parametrize("written", ["signups", "kafka.signups", "rabbit.", "sqs.orders"])
def test_a_source_reference_must_be_kind_dot_name(write_config: WriteConfig, written: str) -> None:
    text = CONFIG.replace("sources: [redis.payments]", f"sources: [{written}]")
    problems = problems_of(write_config(text))
    problem = next(p for p in problems if p.key_path.startswith("routes[1].sources"))
    assert "does not name a queue source" in problem.message
    assert "rabbit, nats, redis" in problem.fix


def test_a_bad_source_name_and_a_missing_queue_are_placed(write_config: WriteConfig) -> None:
    text = CONFIG.replace("    signups: {url", "    'bad name': {url").replace(
        "orders: {stream: ORDERS, subjects: [orders.>]}", "orders: {subjects: [orders.>]}"
    )
    paths = {p.key_path: p for p in problems_of(write_config(text))}
    assert "not a usable source name" in paths["sources.rabbit['bad name']"].message
    assert paths["sources.nats.orders.stream"].message == "required key 'stream' is missing"


def test_the_broker_password_is_never_quoted(write_config: WriteConfig) -> None:
    text = CONFIG.replace("queue: signups", "queue: signups, prefetch_count: 0")
    problems = problems_of(write_config(text))
    assert problems
    assert all("s3cret-pass" not in f"{p.message} {p.fix}" for p in problems)
    config = load_config(write_config(CONFIG), env={})
    shown = repr(config.sources.rabbit["signups"])
    assert "s3cret-pass" not in shown
    assert redacted_url(config.sources.rabbit["signups"].url) == "amqp://rabbit:5672/"


def test_a_source_url_comes_from_the_environment(write_config: WriteConfig) -> None:
    text = CONFIG.replace('url: "amqp://bridge:s3cret-pass@rabbit:5672/", ', "")
    env = {"BREW_BRIDGE_SOURCES__RABBIT__SIGNUPS__URL": "amqp://u:from-env@mq:5672/"}
    config = load_config(write_config(text), env=env)
    source = config.sources.rabbit["signups"]
    assert source.url.get_secret_value() == "amqp://u:from-env@mq:5672/"
    assert source.queue == "signups"
