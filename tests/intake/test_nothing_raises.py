"""Whatever arrives, the intake stores each record as deliveries or dead letters and
never raises (invariant 5): arbitrary bytes, and arbitrary JSON (strings with any code
point, lone surrogates included, deep nesting, huge numbers, objects where strings are
expected) shaped like the example routes' events, through the example config's routes
and a real outbox file."""

from __future__ import annotations

import asyncio
import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brew_bridge.config import compiled_routes, load_config
from brew_bridge.core.intake import Intake
from brew_bridge.events import SourceRecord
from brew_bridge.mapping.routing import route_record
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store import Outbox
from brew_bridge.testing.kafka import example_events

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
ROUTES = compiled_routes(load_config(EXAMPLE, env={}))
TEMPLATES = [(e.topic, json.loads(e.value)) for e in example_events(3)]

any_text = st.text(st.characters(exclude_categories=()), max_size=20)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    any_text,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=12,
)


def _replace_leaves(event: Any, draw: st.DrawFn) -> Any:
    """The event with some of its values swapped for arbitrary ones, keys kept."""
    if isinstance(event, dict):
        return {k: _replace_leaves(v, draw) for k, v in event.items()}
    if isinstance(event, list):
        return [_replace_leaves(v, draw) for v in event]
    return draw(values) if draw(st.booleans()) else event


@st.composite
def record_values(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["bytes", "json", "shaped", "deep"]))
    topic, template = draw(st.sampled_from(TEMPLATES))
    if kind == "bytes":
        return topic, draw(st.binary(max_size=64))
    if kind == "json":
        return topic, json.dumps(draw(values)).encode()
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        return topic, b'{"a": ' * depth + b"1" + b"}" * depth
    return topic, json.dumps(_replace_leaves(template, draw)).encode()


async def _store(path: Path, records: list[SourceRecord]) -> None:
    with Outbox.open(path, synchronous="NORMAL") as outbox:
        router = partial(route_record, routes=ROUTES)
        intake = Intake(router, outbox, Metrics(), source="test", high_water=10, low_water=5)
        async with intake:
            await intake.store(records)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_values(), min_size=1, max_size=8))
def test_every_record_is_a_delivery_or_a_dead_letter(batch: list[tuple[str, bytes]]) -> None:
    records = [
        SourceRecord("test", topic, f"0:{i}", None, value) for i, (topic, value) in enumerate(batch)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.db"
        asyncio.run(_store(path, records))  # must not raise
        db = sqlite_utils.Database(path)
        kept = {r["id"]: r["position"] for r in db["records"].rows}
        linked = {r["record_id"] for r in db["deliveries"].rows} | {
            r["record_id"] for r in db["dead_letters"].rows
        }
        # The example config dead-letters events no route takes (no_route: dead_letter).
        assert sorted(kept.values()) == sorted(r.position for r in records)
        assert set(kept) <= linked
