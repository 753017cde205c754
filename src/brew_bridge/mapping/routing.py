"""Route one source record to deliveries and dead letters: a pure function, never raising.

Invariant 5 (bad input never blocks good input) lives here: whatever bytes arrive, the
source gets back a :class:`~brew_bridge.events.Routed` it can store in one outbox
transaction and move its stream on. In order:

1. ``too_large``: the value is over the source's ``max_record_bytes`` (not parsed at all);
2. ``invalid_json``: not UTF-8 JSON, or JSON that is not an object;
3. every route reading the record's stream whose ``match`` holds takes the event (one
   event may feed several actions; each route delivers, or dead-letters, on its own);
4. per route: the Idempotency-Key (keys.py), the payload (payload.py) or a
   ``mapping_error`` naming the field and expression, then the action's payload check or
   ``payload_invalid`` naming the field; the *resolved* payload (fallbacks applied) is
   what gets queued, with its ordering key;
5. ``no_route`` when no route took the event: a dead letter, or ``dropped`` when
   ``no_route`` is ``drop``.

Everything is compiled once by :func:`compile_routes` (from :class:`RouteSpec` and each
action's :class:`PayloadValidator`); routing a record does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeVar

from ..events import NewDeadLetter, NewDelivery, Reason, Routed, SourceRecord
from .context import decode_event, record_context
from .expressions import (
    CONTEXT_ROOTS,
    Expression,
    ExpressionError,
    compile_expression,
    is_truthy,
)
from .keys import KeyDeriver, KeyFailure, compile_key
from .payload import (
    CompiledMapping,
    MappingFailure,
    PayloadField,
    compile_mapping,
)
from .templates import render_value

__all__ = [
    "CompiledRoute",
    "CompiledRoutes",
    "MatchSpec",
    "PayloadIssue",
    "PayloadValidator",
    "PayloadVerdict",
    "RouteSpec",
    "RoutesError",
    "StreamDefaults",
    "StreamId",
    "compile_routes",
    "route_record",
]

_MESSAGES_SHOWN = 3  # check errors quoted in a payload_invalid message (all are in details)

_T = TypeVar("_T")
_Loc = tuple[str | int, ...]

# A stream as routes name it: (the record's source, its stream), e.g. ("kafka", "orders").
StreamId = tuple[str, str]
# How a record's source is named in messages ("no route reads topic 'orders'").
_STREAM_NOUNS: Final[Mapping[str, str]] = {
    "kafka": "topic",
    "webhook": "webhook source",
    "rabbit": "RabbitMQ source",
    "nats": "NATS source",
    "redis": "Redis source",
}


@dataclass(frozen=True)
class StreamDefaults:
    """Where a stream's events carry their type and their own id, unless a route says."""

    type_path: str = "event.type"
    id_path: str = "event.id"


_DEFAULTS: Final = StreamDefaults()


class MatchSpec(Protocol):
    """Which events a route takes: every condition given must hold."""

    @property
    def type(self) -> Sequence[str] | None: ...
    @property
    def type_path(self) -> str | None: ...  # None: where the route's streams put it
    @property
    def headers(self) -> Mapping[str, Sequence[str]]: ...  # lower-case names
    @property
    def filter(self) -> str | None: ...


class RouteSpec(Protocol):
    """One route as written: its streams, match, action, payload mapping and keys."""

    @property
    def name(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def streams(self) -> Sequence[StreamId]: ...
    @property
    def match(self) -> MatchSpec: ...
    @property
    def payload(self) -> Mapping[str, PayloadField]: ...
    @property
    def id_path(self) -> str | None: ...  # None: where the route's streams put it
    @property
    def idempotency_key(self) -> Sequence[str] | None: ...


class PayloadIssue(Protocol):
    """One problem a payload check found."""

    @property
    def message(self) -> str: ...
    def to_wire(self) -> dict[str, Any]: ...


class PayloadVerdict(Protocol):
    """A payload check's answer: errors refuse the payload; ``resolved`` is what to queue."""

    @property
    def ok(self) -> bool: ...
    @property
    def errors(self) -> Sequence[PayloadIssue]: ...
    @property
    def warnings(self) -> Sequence[PayloadIssue]: ...
    @property
    def resolved(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PayloadValidator:
    """How an action checks a payload before it is queued, compiled once."""

    check: Callable[[dict[str, Any]], PayloadVerdict]  # pure; never raises
    schema: Mapping[str, Any]  # the schema as written
    name: str  # what a refusal calls the schema: "<action>'s <name> refuses the payload"


class RoutesError(ValueError):
    """Routes that do not compile. ``errors`` are every problem found, each with its
    ``loc`` relative to :func:`compile_routes`'s arguments: ``("routes", index, ...)``
    or ``("ordering_key",)``."""

    def __init__(self, errors: Sequence[ExpressionError]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = tuple(errors)


class _MatchError(Exception):
    def __init__(self, expression: str, message: str) -> None:
        super().__init__(message)
        self.expression = expression
        self.message = message


@dataclass(frozen=True)
class CompiledRoute:
    """One route, ready to apply: its match, key deriver, mapping and payload check."""

    name: str
    target: str
    action: str
    streams: frozenset[StreamId]
    validator: PayloadValidator
    mapping: CompiledMapping
    key: KeyDeriver
    types: frozenset[str] | None
    type_path: Expression
    headers: tuple[tuple[str, frozenset[str]], ...]
    filter: Expression | None

    @property
    def schema(self) -> Mapping[str, Any]:
        """The action's payload schema, as written."""
        return self.validator.schema

    def matches(self, context: Mapping[str, Any]) -> bool:
        """Whether the event in ``context`` is for this route. Raises :class:`_MatchError`."""
        if self.types is not None:
            event_type = self._search(self.type_path, context)
            if not isinstance(event_type, str) or event_type not in self.types:
                return False
        headers: Mapping[str, str] = context["headers"]
        for name, accepted in self.headers:
            if headers.get(name) not in accepted:
                return False
        return self.filter is None or is_truthy(self._search(self.filter, context))

    @staticmethod
    def _search(expression: Expression, context: Mapping[str, Any]) -> Any:
        try:
            return expression.search(context)
        except Exception as exc:  # e.g. a JMESPath function given the wrong type
            raise _MatchError(expression.text, f"{type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class CompiledRoutes:
    """Every route of a config, compiled once, indexed by stream."""

    routes: tuple[CompiledRoute, ...]
    by_stream: Mapping[StreamId, tuple[CompiledRoute, ...]]
    max_record_bytes: int
    max_record_bytes_setting: str  # its name, for the too_large message
    no_route: Literal["dead_letter", "drop"]
    ordering_key: Expression | None

    def streams_of(self, source: str) -> frozenset[str]:
        """Every stream of ``source`` some route reads (what a consumer subscribes to)."""
        return frozenset(stream for kind, stream in self.by_stream if kind == source)


def _attempt(errors: list[ExpressionError], loc: _Loc, compile_: Callable[[], _T]) -> _T | None:
    """``compile_()``, or None with its error added to ``errors`` at ``loc``."""
    try:
        return compile_()
    except ExpressionError as exc:
        errors.append(ExpressionError(exc.message, exc.fix, (*loc, *exc.loc)))
        return None


def _stream_default(
    route: RouteSpec,
    defaults: Mapping[StreamId, StreamDefaults],
    setting: Literal["type_path", "id_path"],
) -> str:
    """The one place the route's streams put ``setting``; raises when they disagree."""
    found: set[str] = {
        getattr(defaults.get(stream, _DEFAULTS), setting) for stream in route.streams
    }
    if len(found) > 1:
        raise ExpressionError(
            f"route {route.name!r} reads sources that keep this in different places "
            f"({', '.join(sorted(found))})",
            f"set {setting} to the expression that finds it in every one of them",
        )
    return found.pop() if found else str(getattr(_DEFAULTS, setting))


def _compile_route(
    route: RouteSpec,
    validator: PayloadValidator,
    defaults: Mapping[StreamId, StreamDefaults],
    at: _Loc,
    errors: list[ExpressionError],
) -> CompiledRoute | None:
    """One route, or None with every part that does not compile added to ``errors``."""
    before = len(errors)
    match = route.match
    type_path = _attempt(
        errors,
        (*at, "match", "type_path"),
        lambda: compile_expression(
            match.type_path
            # Without match.type the path is never read: nothing to agree on.
            or (_stream_default(route, defaults, "type_path") if match.type else "event.type"),
            roots=CONTEXT_ROOTS,
        ),
    )
    filter_ = None
    if match.filter is not None:
        text = match.filter
        filter_ = _attempt(
            errors,
            (*at, "match", "filter"),
            lambda: compile_expression(text, roots=CONTEXT_ROOTS),
        )
    mapping = _attempt(errors, (*at, "payload"), lambda: compile_mapping(route.name, route.payload))
    key = _attempt(
        errors,
        (*at, "idempotency_key") if route.id_path else (*at, "id_path"),
        lambda: compile_key(
            route.name,
            route.idempotency_key,
            id_path=route.id_path or _stream_default(route, defaults, "id_path"),
        ),
    )
    if type_path is None or mapping is None or key is None or len(errors) > before:
        return None
    return CompiledRoute(
        name=route.name,
        target=route.target,
        action=route.action,
        streams=frozenset(route.streams),
        validator=validator,
        mapping=mapping,
        key=key,
        types=frozenset(match.type) if match.type is not None else None,
        type_path=type_path,
        headers=tuple((name, frozenset(values)) for name, values in match.headers.items()),
        filter=filter_,
    )


def compile_routes(
    routes: Sequence[RouteSpec],
    *,
    validators: Mapping[str, PayloadValidator],
    no_route: Literal["dead_letter", "drop"],
    ordering_key: str | None,
    max_record_bytes: int,
    max_record_bytes_setting: str,
    stream_defaults: Mapping[StreamId, StreamDefaults] | None = None,
) -> CompiledRoutes:
    """Compile every route, each checked by ``validators[route.name]`` (every route must
    have one: the schema of what it fires). ``ordering_key`` is a path over the resolved
    payload (None: no ordering); ``max_record_bytes_setting`` names the limit in
    ``too_large`` messages; ``stream_defaults`` says where a stream's events keep their
    type and id when a route does not (``event.type`` and ``event.id`` elsewhere).

    Raises :class:`RoutesError` listing every match, payload, key and ordering
    expression that does not compile.
    """
    errors: list[ExpressionError] = []
    compiled: list[CompiledRoute] = []
    for index, spec in enumerate(routes):
        route = _compile_route(
            spec, validators[spec.name], stream_defaults or {}, ("routes", index), errors
        )
        if route is not None:
            compiled.append(route)
    ordering = None
    if ordering_key is not None:
        ordering = _attempt(errors, ("ordering_key",), lambda: compile_expression(ordering_key))
    if errors:
        raise RoutesError(errors)
    by_stream: dict[StreamId, list[CompiledRoute]] = {}
    for route in compiled:
        for stream in sorted(route.streams):
            by_stream.setdefault(stream, []).append(route)
    return CompiledRoutes(
        routes=tuple(compiled),
        by_stream={stream: tuple(rs) for stream, rs in by_stream.items()},
        max_record_bytes=max_record_bytes,
        max_record_bytes_setting=max_record_bytes_setting,
        no_route=no_route,
        ordering_key=ordering,
    )


def _dead(
    reason: Reason,
    message: str,
    *,
    route: str | None = None,
    key: str | None = None,
    details: dict[str, Any] | None = None,
) -> NewDeadLetter:
    return NewDeadLetter(
        stage="ingest",
        reason=reason,
        message=message,
        route=route,
        idempotency_key=key,
        details=details,
    )


def _ordering_key(expression: Expression | None, payload: Mapping[str, Any]) -> str | None:
    if expression is None:
        return None
    try:
        value = expression.search(payload)
    except Exception:  # no usable ordering key: the delivery is simply not ordered
        return None
    if value is None or value == "":
        return None
    return render_value(value)


def _deliver(
    route: CompiledRoute, context: Mapping[str, Any], routes: CompiledRoutes
) -> NewDelivery | NewDeadLetter:
    key = route.key(context)
    if isinstance(key, KeyFailure):
        return _dead(
            Reason.MAPPING_ERROR,
            f"route {route.name!r}: {key.message} (expression {key.expression!r})",
            route=route.name,
            details={"field": "(idempotency key)", "expression": key.expression},
        )
    mapped = route.mapping(context)
    if isinstance(mapped, MappingFailure):
        return _dead(
            Reason.MAPPING_ERROR,
            mapped.describe(),
            route=route.name,
            key=key,
            details={"field": mapped.field, "expression": mapped.expression},
        )
    check = route.validator.check(mapped.payload)
    if not check.ok:
        shown = "; ".join(issue.message for issue in check.errors[:_MESSAGES_SHOWN])
        more = len(check.errors) - _MESSAGES_SHOWN
        if more > 0:
            shown += f"; and {more} more"
        return _dead(
            Reason.PAYLOAD_INVALID,
            f"route {route.name!r}: {route.action}'s {route.validator.name} refuses "
            f"the payload: {shown}",
            route=route.name,
            key=key,
            details={
                "trigger": route.action,
                "errors": [issue.to_wire() for issue in check.errors],
                "warnings": [issue.to_wire() for issue in check.warnings],
                "payload": mapped.payload,
            },
        )
    return NewDelivery(
        route=route.name,
        target=route.target,
        action=route.action,
        idempotency_key=key,
        payload=check.resolved,
        ordering_key=_ordering_key(routes.ordering_key, check.resolved),
        event_id=route.key.event_id(context),
    )


def _no_route(
    record: SourceRecord, event: Mapping[str, Any], candidates: Sequence[CompiledRoute]
) -> NewDeadLetter:
    event_type = event.get("type")
    what = f" (type {event_type!r})" if isinstance(event_type, str) else ""
    noun = _STREAM_NOUNS.get(record.source, f"{record.source} stream")
    if candidates:
        message = f"no route on {noun} {record.stream!r} matches this event{what}"
    else:
        message = f"no route reads {noun} {record.stream!r}"
    return _dead(
        Reason.NO_ROUTE,
        message,
        details={
            "topic": record.stream,
            "type": event_type if isinstance(event_type, str) else None,
            "routes": [route.name for route in candidates],
        },
    )


def _route(record: SourceRecord, routes: CompiledRoutes, any_topic: bool) -> Routed:
    size = len(record.value)
    if size > routes.max_record_bytes:
        setting = routes.max_record_bytes_setting
        message = f"value is {size} bytes, over {setting} ({routes.max_record_bytes})"
        details = {"size": size, "limit": routes.max_record_bytes}
        return Routed(record, dead_letters=(_dead(Reason.TOO_LARGE, message, details=details),))
    event = decode_event(record.value)
    if isinstance(event, str):
        return Routed(record, dead_letters=(_dead(Reason.INVALID_JSON, event),))
    candidates = (
        routes.routes if any_topic else routes.by_stream.get((record.source, record.stream), ())
    )
    base = record_context(record, event)
    deliveries: list[NewDelivery] = []
    dead_letters: list[NewDeadLetter] = []
    for route in candidates:
        context = dict(base)
        context["route"] = route.name
        try:
            if not route.matches(context):
                continue
        except _MatchError as exc:
            dead_letters.append(
                _dead(
                    Reason.MAPPING_ERROR,
                    f"route {route.name!r}: match expression {exc.expression!r} failed: "
                    f"{exc.message}",
                    route=route.name,
                    details={"field": "(match)", "expression": exc.expression},
                )
            )
            continue
        outcome = _deliver(route, context, routes)
        if isinstance(outcome, NewDelivery):
            deliveries.append(outcome)
        else:
            dead_letters.append(outcome)
    if not deliveries and not dead_letters:
        if routes.no_route == "drop":
            return Routed(record, dropped=True)
        dead_letters.append(_no_route(record, event, candidates))
    return Routed(record, deliveries=tuple(deliveries), dead_letters=tuple(dead_letters))


def route_record(
    record: SourceRecord, routes: CompiledRoutes, *, any_topic: bool = False
) -> Routed:
    """What to store for ``record``: deliveries and/or dead letters, or ``dropped``.

    Pure and never raising. ``any_topic`` tries every route whatever the record's topic
    (``brew-bridge map`` without ``--topic``).
    """
    try:
        return _route(record, routes, any_topic)
    except Exception as exc:  # last line of defence: a bug here must not stall a partition
        message = f"routing failed unexpectedly: {type(exc).__name__}: {exc}"
        return Routed(record, dead_letters=(_dead(Reason.MAPPING_ERROR, message),))
