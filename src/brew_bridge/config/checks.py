"""The cross-checks the models alone cannot see, and the one compile of the routes.

Undeclared triggers, duplicate route names, payloadSchemas Brew would refuse, payload
keys a trigger does not declare and required keys a route never maps; then the routes
are compiled (:func:`~brew_bridge.mapping.routing.compile_routes`), and whatever does
not compile (``item`` outside ``each``, say) is a problem too. The compile *is* the last
check: a config that passes has its routes compiled, and nothing compiles them again.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any, Literal

from pydantic import ValidationError

from brew_bridge.config.problems import ENV_PREFIX, Source, problem
from brew_bridge.config.routes import FieldSpec, RouteConfig, TriggerConfig
from brew_bridge.config.targets import PIPELINES
from brew_bridge.config.webhooks import WebhookSourceConfig
from brew_bridge.config.yamlpos import Loc
from brew_bridge.errors import ConfigProblem
from brew_bridge.mapping.routing import (
    CompiledRoutes,
    PayloadValidator,
    RoutesError,
    StreamDefaults,
    StreamId,
    compile_routes,
)
from brew_bridge.wire.payload_schema import PayloadCheck, compile_schema, schema_problems

__all__ = ["checked_routes", "partial_problems"]

# (where, message, fix): a problem before the source places it.
Found = tuple[Loc, str, str]

_SCHEMA_NAME = "payloadSchema"  # what a payload_invalid dead letter calls a trigger's schema
_MAX_RECORD_BYTES = "kafka.max_record_bytes"
# Stands in for an undeclared trigger, so the route's own expressions are still compiled
# and reported with it; routes compiled with it are never kept.
_UNDECLARED = PayloadValidator(check=compile_schema({}), schema={}, name=_SCHEMA_NAME)
# The targets that publish no payload schema (Pinkfish, Boring Marketing) take any object.
_ANY_OBJECT = PayloadValidator(
    check=lambda payload: PayloadCheck(errors=(), warnings=(), resolved=payload),
    schema={},
    name="payload",
)


def _schema_fit(
    loc: Loc, specs: Mapping[str, FieldSpec], fields: object, trigger: str, prefix: str
) -> Iterator[Found]:
    """Payload keys the trigger does not declare, and required keys the route never maps."""
    declared = {
        f["key"]: f
        for f in (fields if isinstance(fields, list) else ())
        if isinstance(f, Mapping) and isinstance(f.get("key"), str)
    }
    for name, spec in specs.items():
        field = declared.get(name)
        if field is None:
            close = difflib.get_close_matches(name, list(declared), n=1, cutoff=0.6)
            yield (
                (*loc, name),
                f"payload key {prefix}{name!r} is not in {trigger}'s payloadSchema "
                "(Brew would ignore it with an unexpected_key warning)",
                f"rename it to {close[0]!r}"
                if close
                else f"declare it in triggers.{trigger}.payload_schema, or remove it",
            )
            continue
        children = field.get("children")
        if spec.fields is not None and children:
            yield from _schema_fit(
                (*loc, name, "fields"), spec.fields, children, trigger, f"{prefix}{name}."
            )
        if spec.each is not None and spec.each.fields is not None and children:
            yield from _schema_fit(
                (*loc, name, "each", "fields"),
                spec.each.fields,
                children,
                trigger,
                f"{prefix}{name}[].",
            )
    for key, field in declared.items():
        if field.get("required") is True and "fallbackValue" not in field and key not in specs:
            yield (
                loc,
                f"{trigger} requires payload key {prefix}{key!r}, but this route does not map it",
                f"add {key}: <path> under this payload",
            )


def _webhook_checks(
    route: RouteConfig, at: Loc, webhooks: Mapping[str, WebhookSourceConfig]
) -> Iterator[Found]:
    """Every webhook source a route reads is declared under webhooks.sources."""
    for index, name in enumerate(route.webhooks):
        if name not in webhooks:
            close = difflib.get_close_matches(name, list(webhooks), n=1)
            yield (
                (*at, "webhooks", index),
                f"webhook source {name!r} is not declared under webhooks.sources",
                f"did you mean {close[0]!r}?"
                if close
                else f"declare it under webhooks.sources ({name}: {{scheme: ..., secrets: [...]}})",
            )


def _queue_checks(route: RouteConfig, at: Loc, queues: Collection[str]) -> Iterator[Found]:
    """Every queue source a route reads is declared under sources:."""
    for index, written in enumerate(route.sources):
        if written not in queues:
            kind, _, name = written.partition(".")
            close = difflib.get_close_matches(written, list(queues), n=1)
            yield (
                (*at, "sources", index),
                f"source {written!r} is not declared under sources.{kind}",
                f"did you mean {close[0]!r}?"
                if close
                else f"declare it under sources.{kind} ({name}: {{url: ..., ...}})",
            )


def _stream_defaults(webhooks: Mapping[str, WebhookSourceConfig]) -> dict[StreamId, StreamDefaults]:
    """Where each webhook source keeps the event type, and its delivery id as the event's
    own id: a provider's redelivery gets the same key."""
    return {
        ("webhook", name): StreamDefaults(config.default_type_path, config.default_id_path)
        for name, config in webhooks.items()
    }


def _target_checks(
    route: RouteConfig, at: Loc, kind: str | None, names: Sequence[str], branded: Collection[str]
) -> Iterator[Found]:
    """The route's target is configured, and what it fires is something that target fires
    (``branded``: the Boring Marketing targets with a default brand_id)."""
    if kind is None:
        close = difflib.get_close_matches(route.target, names, n=1)
        yield (
            (*at, "target"),
            f"target {route.target!r} is not configured",
            f"did you mean {close[0]!r}?"
            if close
            else f"use brew, or add {route.target} under targets: with its kind",
        )
        return
    if kind == "boring_marketing" and route.trigger not in PIPELINES:
        close = difflib.get_close_matches(route.trigger, list(PIPELINES), n=1)
        yield (
            (*at, "trigger"),
            f"{route.trigger!r} is not a Boring Marketing pipeline endpoint",
            f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(PIPELINES)}",
        )
    if (
        kind == "boring_marketing"
        and route.target not in branded
        and "brand_id" not in route.payload
    ):
        yield (
            (*at, "payload"),
            "a Boring Marketing pipeline runs for a brand, and neither this route's payload "
            f"nor targets.{route.target} names one: every event would be rejected",
            "map brand_id: (e.g. brand_id: event.data.brand_id) or set "
            f"targets.{route.target}.brand_id",
        )
    if route.on_unknown_outcome == "fire_again" and kind != "pinkfish":
        yield (
            (*at, "on_unknown_outcome"),
            f"on_unknown_outcome applies to Pinkfish routes; {route.target} ({kind}) resolves "
            "a fire that got no answer by firing again, safely",
            "remove on_unknown_outcome from this route",
        )


def _cross_checks(
    triggers: Mapping[str, TriggerConfig],
    routes: Sequence[tuple[int, RouteConfig]],
    declared: Collection[str],
    webhooks: Mapping[str, WebhookSourceConfig] | None,
    targets: Mapping[str, str] | None,
    branded: Collection[str],
    queues: Collection[str] | None,
) -> Iterator[Found]:
    """The checks between triggers, targets, webhook sources and routes (``webhooks`` or
    ``targets`` None: that section is broken, so references to it are not checked)."""
    seen: dict[str, int] = {}
    schema_ok: dict[str, bool] = {}
    for trigger_id, trigger in triggers.items():
        found = schema_problems(trigger.payload_schema)
        schema_ok[trigger_id] = not found
        for text in found:
            yield (
                ("triggers", trigger_id, "payload_schema"),
                text,
                f"fix the schema (GET /v1/automations/triggers/{trigger_id} shows Brew's)",
            )
    for i, route in routes:
        at: Loc = ("routes", i)
        if route.name in seen:
            yield (
                (*at, "name"),
                f"route name {route.name!r} is already used by routes[{seen[route.name]}]",
                "give every route its own name: it is part of every Idempotency-Key",
            )
        seen.setdefault(route.name, i)
        if webhooks is not None:
            yield from _webhook_checks(route, at, webhooks)
        if queues is not None:
            yield from _queue_checks(route, at, queues)
        kind = _kind(route, targets)
        if targets is not None:
            yield from _target_checks(route, at, kind, list(targets), branded)
        if kind != "brew":
            continue  # the other targets publish no triggers or schemas to check against
        if route.trigger not in declared:
            close = difflib.get_close_matches(route.trigger, list(declared), n=1)
            yield (
                (*at, "trigger"),
                f"trigger {route.trigger!r} is not declared under triggers:",
                f"did you mean {close[0]!r}?"
                if close
                else f"declare {route.trigger} under triggers: with its payload_schema",
            )
        elif schema_ok.get(route.trigger, False):
            fields = triggers[route.trigger].payload_schema.get("fields")
            yield from _schema_fit((*at, "payload"), route.payload, fields, route.trigger, "")


def checked_routes(
    triggers: Mapping[str, TriggerConfig],
    routes: Sequence[tuple[int, RouteConfig]],
    declared: Collection[str],
    source: Source,
    *,
    no_route: Literal["dead_letter", "drop"],
    ordering_key: str | None,
    max_record_bytes: int,
    webhooks: Mapping[str, WebhookSourceConfig] | None,
    targets: Mapping[str, str] | None,
    branded: Collection[str] = (),
    queues: Collection[str] | None = None,
) -> tuple[CompiledRoutes | None, list[ConfigProblem]]:
    """The cross-checks, then the routes compiled (each checked against its trigger's
    payloadSchema): the routes, or None and every problem, each route's together.

    ``routes`` are (index in the config, route); ``declared`` is every trigger id
    written, valid or not, so a broken trigger is not also "undeclared"; ``webhooks``
    the webhook sources and ``targets`` every target's kind by name, ``brew`` included
    (each None when that section is broken); ``branded`` the Boring Marketing targets
    with a default brand_id; ``queues`` every queue source as ``kind.name`` (None: the
    sources section is broken).
    """
    found = list(_cross_checks(triggers, routes, declared, webhooks, targets, branded, queues))
    schemas = {
        trigger_id: PayloadValidator(
            check=compile_schema(trigger.payload_schema),
            schema=trigger.payload_schema,
            name=_SCHEMA_NAME,
        )
        for trigger_id, trigger in triggers.items()
    }
    compiled = None
    try:
        compiled = compile_routes(
            [route for _, route in routes],
            validators={
                r.name: schemas.get(r.action, _UNDECLARED)
                if _kind(r, targets) == "brew"
                else _ANY_OBJECT
                for _, r in routes
            },
            no_route=no_route,
            ordering_key=ordering_key,
            max_record_bytes=max_record_bytes,
            max_record_bytes_setting=_MAX_RECORD_BYTES,
            stream_defaults=_stream_defaults(webhooks or {}),
        )
    except RoutesError as exc:
        found.extend((_placed(e.loc, routes), e.message, e.fix) for e in exc.errors)
    found.sort(key=_route_index)
    problems = [problem(source, loc, message, fix) for loc, message, fix in found]
    return (None if problems else compiled), problems


def _kind(route: RouteConfig, targets: Mapping[str, str] | None) -> str | None:
    """The kind of the route's target (None: not configured). With the targets section
    broken, a route naming brew is still Brew's."""
    if targets is None:
        return "brew" if route.target == "brew" else None
    return targets.get(route.target)


def _placed(loc: Loc, routes: Sequence[tuple[int, RouteConfig]]) -> Loc:
    """A location in compile_routes' arguments as one in the config."""
    if loc[:1] == ("ordering_key",):
        return ("dispatcher", *loc)
    return ("routes", routes[int(loc[1])][0], *loc[2:])


def _route_index(found: Found) -> int:
    """The route a problem is in (-1: none)."""
    loc = found[0]
    return loc[1] if loc[:1] == ("routes",) and len(loc) > 1 and isinstance(loc[1], int) else -1


def partial_problems(data: Mapping[str, Any], source: Source) -> list[ConfigProblem]:
    """:func:`checked_routes` for a config that failed validation elsewhere, over the
    triggers and routes that are valid on their own, so one run still reports every
    problem."""
    if any(k.startswith((f"{ENV_PREFIX}ROUTES", f"{ENV_PREFIX}TRIGGERS")) for k in source.env):
        return []  # the file is not what was validated; these would mislead
    raw_triggers = data.get("triggers")
    raw_routes = data.get("routes")
    triggers: dict[str, TriggerConfig] = {}
    declared: list[str] = []
    if isinstance(raw_triggers, Mapping):
        declared = [str(k) for k in raw_triggers]
        for trigger_id, raw in raw_triggers.items():
            with suppress(ValidationError):
                triggers[str(trigger_id)] = TriggerConfig.model_validate(raw)
    routes: list[tuple[int, RouteConfig]] = []
    if isinstance(raw_routes, list):
        for index, raw in enumerate(raw_routes):
            with suppress(ValidationError):
                routes.append((index, RouteConfig.model_validate(raw)))
    # Only the problems are kept, so the record settings are placeholders.
    _, problems = checked_routes(
        triggers,
        routes,
        declared,
        source,
        no_route="dead_letter",
        ordering_key=None,
        max_record_bytes=1,
        webhooks=None,
        targets=None,
    )
    return problems
