"""The route language: ``routes:`` (what events to take and the payload to make of them)
and ``triggers:`` (the Brew triggers routes fire, with their payloadSchema).

Every expression and template is checked as it is validated (compiled and dropped), so
a problem names its own key and line even when other sections are broken; the checks
between routes and triggers, and the one compile of the routes that is kept, are in
:mod:`brew_bridge.config.checks`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from brew_bridge.config.problems import checked, config_problem
from brew_bridge.config.queues import QUEUE_KINDS
from brew_bridge.config.sections import NAME, Strict
from brew_bridge.mapping.expressions import CONTEXT_ROOTS, ITEM_ROOTS, compile_expression
from brew_bridge.mapping.keys import parse_key_template
from brew_bridge.mapping.templates import parse_template

__all__ = ["NAME", "FieldSpec", "MatchConfig", "RouteConfig", "TriggerConfig"]


def _as_list(value: Any) -> Any:
    """Let a single string stand for a one-element list (``path: a`` = ``path: [a]``)."""
    return [value] if isinstance(value, str) else value


# A JMESPath over the record context (event, headers, key, route, stream, position, topic, ...).
ContextPath = Annotated[
    str, AfterValidator(checked(lambda t: compile_expression(t, roots=CONTEXT_ROOTS)))
]
# Same, where a payload field may also read ``item`` / ``index`` (inside ``each``; checked
# strictly when the route is compiled).
FieldPath = Annotated[
    str,
    AfterValidator(checked(lambda t: compile_expression(t, roots=CONTEXT_ROOTS | ITEM_ROOTS))),
]
FieldTemplate = Annotated[
    str, AfterValidator(checked(lambda t: parse_template(t, roots=CONTEXT_ROOTS | ITEM_ROOTS)))
]
KeyTemplate = Annotated[str, AfterValidator(checked(parse_key_template))]


ValueType = Literal["string", "int", "float", "bool", "date", "datetime", "decimal"]
_SOURCES = ("path", "value", "template", "fields")


class FieldSpec(Strict):
    """How one payload field is made (see mapping/payload.py and config/example.yaml).

    A bare string is shorthand for ``{path: <string>}``. Exactly one of ``path``,
    ``value``, ``template``, ``fields``; ``each`` maps every element of the array at
    ``path``.
    """

    path: Annotated[list[FieldPath], BeforeValidator(_as_list), Field(min_length=1)] | None = None
    value: JsonValue = None
    template: (
        Annotated[list[FieldTemplate], BeforeValidator(_as_list), Field(min_length=1)] | None
    ) = None
    fields: dict[str, FieldSpec] | None = None
    each: FieldSpec | None = None
    default: JsonValue = None
    type: ValueType | None = None
    exponent: int = Field(0, ge=0, le=18)
    places: int | None = Field(None, ge=0, le=18)
    epoch_unit: Literal["s", "ms"] = "s"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"path": data}
        if not isinstance(data, dict):
            raise config_problem(
                f"a payload field is a path (text) or a mapping, not {type(data).__name__}",
                "write a path such as event.data.email, or {value: ...} for a literal",
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [name for name in _SOURCES if name in self.model_fields_set]
        if len(given) != 1:
            found = f"found {' and '.join(given)}" if given else "found none"
            raise config_problem(
                f"a payload field needs exactly one of path, value, template, fields ({found})",
                "keep one; for fallbacks list several paths (path: [a, b]) or add default:",
            )
        if self.each is not None and self.path is None:
            raise config_problem(
                "each: maps the elements of an array, so it needs path: (the array)",
                "add path: pointing at the array, e.g. path: event.line_items",
            )
        if self.type is not None and (self.fields is not None or self.each is not None):
            raise config_problem(
                "type: converts a single value; it cannot apply to fields: or each:",
                "move type: onto the fields inside",
            )
        set_ = self.model_fields_set
        if self.type != "decimal" and ({"exponent", "places"} & set_):
            raise config_problem(
                "exponent: and places: only apply to type: decimal",
                "add type: decimal, or remove them",
            )
        if self.type not in ("date", "datetime") and "epoch_unit" in set_:
            raise config_problem(
                "epoch_unit: only applies to type: date or datetime",
                "add type: datetime, or remove it",
            )
        return self

    @property
    def has_default(self) -> bool:
        """Whether ``default:`` was written (a default of null included)."""
        return "default" in self.model_fields_set


_TOPIC_NAME = re.compile(r"[A-Za-z0-9._\-]{1,249}")


class MatchConfig(Strict):
    """Which events of the route's topics it takes. Every condition given must hold."""

    # The event's type (one value or a list of accepted values), read at type_path.
    type: Annotated[list[str], BeforeValidator(_as_list), Field(min_length=1)] | None = None
    # null: where the source keeps it (event.type; a Shopify or GitHub webhook's header).
    type_path: ContextPath | None = None
    # Header equality; names are case-insensitive, a list accepts any of its values.
    headers: dict[str, Annotated[list[str], BeforeValidator(_as_list), Field(min_length=1)]] = (
        Field(default_factory=dict)
    )
    # JMESPath over the context; the route takes the event only when it is truthy.
    filter: ContextPath | None = None

    @field_validator("headers")
    @classmethod
    def _lower_names(cls, headers: dict[str, list[str]]) -> dict[str, list[str]]:
        return {name.lower(): values for name, values in headers.items()}


class RouteConfig(Strict):
    """One route: events from a source, matched, mapped to one Brew trigger's payload."""

    name: str
    description: str | None = None
    # The sources: Kafka topics, webhook sources (webhooks.sources) and queue sources
    # (sources.<kind>.<name>, written kind.name); at least one.
    topics: list[str] = Field(default_factory=list)
    webhooks: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    match: MatchConfig = MatchConfig()
    # What fires the route: "brew" (the brew: section) or the name of a targets: entry.
    target: str = "brew"
    # Brew: a triggerEventId declared under triggers:; Pinkfish: the trigger id; Boring
    # Marketing: the pipeline endpoint (analyze, enrich/brand, ...).
    trigger: str = Field(min_length=1, max_length=256)
    payload: dict[str, FieldSpec] = Field(min_length=1)
    # Where the event's own id is; the default key is "{route}:{<id_path>}". null: the
    # source's (event.id on Kafka; a webhook's delivery id, which is its position).
    id_path: ContextPath | None = None
    idempotency_key: (
        Annotated[list[KeyTemplate], BeforeValidator(_as_list), Field(min_length=1)] | None
    ) = None
    # This route's runs time out after this long instead of poller.run_deadline_seconds.
    run_deadline_seconds: float | None = Field(None, gt=0)
    # A fire that got no answer, at a target without idempotency keys (Pinkfish): keep it
    # as an outcome_unknown dead letter (the operator decides), or fire again (the
    # workflow may then run twice). Brew and Boring Marketing resolve it by firing again.
    on_unknown_outcome: Literal["dead_letter", "fire_again"] = "dead_letter"

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME.fullmatch(name):
            raise config_problem(
                f"route name {name!r} is not usable in an Idempotency-Key",
                "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
            )
        return name

    @field_validator("topics")
    @classmethod
    def _topics(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            if not _TOPIC_NAME.fullmatch(topic):
                raise config_problem(
                    f"{topic!r} is not a valid Kafka topic name",
                    "use 1-249 letters, digits, '.', '_' or '-'",
                )
        return topics

    @field_validator("sources")
    @classmethod
    def _sources(cls, sources: list[str]) -> list[str]:
        for written in sources:
            kind, _, name = written.partition(".")
            if kind not in QUEUE_KINDS or not NAME.fullmatch(name):
                raise config_problem(
                    f"{written!r} does not name a queue source",
                    f"write <kind>.<name> of a sources: entry, kind one of {', '.join(QUEUE_KINDS)}"
                    " (e.g. rabbit.signups)",
                )
        return sources

    @model_validator(mode="after")
    def _has_source(self) -> RouteConfig:
        if not self.topics and not self.webhooks and not self.sources:
            raise config_problem(
                "a route reads at least one Kafka topic, webhook source or queue source",
                "add topics: [name], webhooks: [name of a webhooks.sources entry] or "
                "sources: [kind.name of a sources: entry]",
            )
        return self

    @property
    def streams(self) -> list[tuple[str, str]]:
        """What the route reads, as (source, stream) pairs."""
        queues = [tuple(written.split(".", 1)) for written in self.sources]
        return [
            *(("kafka", t) for t in self.topics),
            *(("webhook", w) for w in self.webhooks),
            *((kind, name) for kind, name in queues),
        ]

    @property
    def action(self) -> str:
        """What the target fires: the trigger."""
        return self.trigger


class TriggerConfig(Strict):
    """A Brew trigger the routes fire, with the payloadSchema payloads are checked against."""

    title: str | None = None
    # Brew's wire payloadSchema: {type: object, fields: [{key, type, required, ...}]}.
    payload_schema: dict[str, Any]
