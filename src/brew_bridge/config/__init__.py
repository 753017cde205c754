"""Every configuration model, in one module.

The YAML file is validated by these models at start; ``BREW_BRIDGE_*`` environment
variables (``__`` for nesting) override it; secrets (the Brew API key) come only from
the environment or a mounted file, never from the YAML.

Section owners: ``kafka``/``outbox`` → ingest, ``brew``/``dispatcher``/``poller`` →
delivery, ``routes``/``triggers`` → routing and transforms.

Precedence, highest first (:meth:`BridgeConfig.settings_customise_sources`): constructor
arguments, ``BREW_BRIDGE_*`` environment variables, the YAML file, model defaults.
:func:`load_config` reports every problem at once (:class:`~brew_bridge.errors.ConfigError`)
with the file, the key path, the YAML line and the fix: structure and types, unknown
keys (with the closest valid key), expressions and templates that do not compile, routes
naming undeclared triggers, payload mappings that do not fit the trigger's payloadSchema.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from brew_bridge.errors import ConfigError, ConfigProblem
from brew_bridge.mapping.keys import compile_key, parse_key_template
from brew_bridge.mapping.transforms import (
    CONTEXT_ROOTS,
    ITEM_ROOTS,
    ExpressionError,
    compile_expression,
    compile_mapping,
    parse_template,
)
from brew_bridge.targets.brew.payload_schema import schema_problems

__all__ = [
    "API_KEY_ENV",
    "API_KEY_FILE_ENV",
    "ENV_PREFIX",
    "BrewConfig",
    "BridgeConfig",
    "DispatcherConfig",
    "FieldSpec",
    "KafkaConfig",
    "LoggingConfig",
    "MatchConfig",
    "OutboxConfig",
    "PollerConfig",
    "RateLimit",
    "RateLimitsConfig",
    "RetryConfig",
    "RouteConfig",
    "ServerConfig",
    "TriggerConfig",
    "config_from_mapping",
    "load_config",
    "semantic_problems",
]

ENV_PREFIX = "BREW_BRIDGE_"
API_KEY_ENV = "BREW_API_KEY"
API_KEY_FILE_ENV = "BREW_API_KEY_FILE"

Loc = tuple[str | int, ...]


# --------------------------------------------------------------------------- validators


def _config_problem(message: str, fix: str) -> PydanticCustomError:
    """A validation error that carries its own fix (read back by the loader)."""
    return PydanticCustomError("config_problem", "{message}", {"message": message, "fix": fix})


def _checked(check: Callable[[str], object]) -> Callable[[str], str]:
    def validate(text: str) -> str:
        try:
            check(text)
        except ExpressionError as exc:
            raise _config_problem(exc.message, exc.fix) from None
        return text

    return validate


def _as_list(value: Any) -> Any:
    """Let a single string stand for a one-element list (``path: a`` = ``path: [a]``)."""
    return [value] if isinstance(value, str) else value


# A JMESPath over the record context (event, headers, topic, partition, offset, key, route).
ContextPath = Annotated[
    str, AfterValidator(_checked(lambda t: compile_expression(t, roots=CONTEXT_ROOTS)))
]
# Same, where a payload field may also read ``item`` / ``index`` (inside ``each``; checked
# strictly when the route is compiled).
FieldPath = Annotated[
    str,
    AfterValidator(_checked(lambda t: compile_expression(t, roots=CONTEXT_ROOTS | ITEM_ROOTS))),
]
# A JMESPath over the mapped payload (dispatcher.ordering_key).
PayloadPath = Annotated[str, AfterValidator(_checked(compile_expression))]
FieldTemplate = Annotated[
    str, AfterValidator(_checked(lambda t: parse_template(t, roots=CONTEXT_ROOTS | ITEM_ROOTS)))
]
KeyTemplate = Annotated[str, AfterValidator(_checked(parse_key_template))]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(_Strict):
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "brew-bridge"
    client_id: str = "brew-bridge"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_batch_records: int = Field(500, ge=1, le=100_000)
    poll_timeout_ms: int = Field(500, ge=1)
    session_timeout_ms: int = Field(10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    max_poll_interval_ms: int = Field(300_000, ge=10_000)
    # A record larger than this is dead-lettered as too_large, not parsed.
    max_record_bytes: int = Field(1_048_576, ge=1)
    # 1: route the next batch in a child process while this one is stored (two cores);
    # 0: route inline.
    routing_workers: int = Field(0, ge=0, le=1)
    # Dead letters are also published here when set (original key and value, reason headers).
    dlq_topic: str | None = None
    # Each run's end is published here when set.
    result_topic: str | None = None


class OutboxConfig(_Strict):
    path: str = "brew-bridge.db"
    # FULL: a committed batch survives power loss, not just a process crash; the
    # durability promise (offsets committed only after the outbox) depends on it.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Consumption pauses when rows waiting to fire reach high_water, resumes below low_water.
    high_water: int = Field(50_000, ge=1)
    low_water: int = Field(40_000, ge=0)
    # Finished work older than this is pruned (hourly by the worker); 0 keeps it forever.
    # Must exceed the source topic's retention: a pruned delivery no longer dedupes.
    # 15 days clears Kafka's defaults (retention.ms 7 d + segment.ms 7 d).
    retention_seconds: float = Field(15 * 86400.0, ge=0)

    @model_validator(mode="after")
    def _water_marks(self) -> OutboxConfig:
        if self.low_water >= self.high_water:
            raise ValueError("low_water must be below high_water")
        return self


class RateLimit(_Strict):
    limit: int = Field(ge=1)
    window_seconds: float = Field(60.0, gt=0)


class RateLimitsConfig(_Strict):
    """Per-policy budgets, matching Brew's per-key, per-route limits."""

    fire: RateLimit = RateLimit(limit=60, window_seconds=60)
    run_read: RateLimit = RateLimit(limit=100, window_seconds=60)
    trigger_read: RateLimit = RateLimit(limit=100, window_seconds=60)


class RetryConfig(_Strict):
    max_attempts: int = Field(10, ge=1)
    max_age_seconds: float = Field(24 * 3600.0, gt=0)
    base_delay_seconds: float = Field(0.5, gt=0)
    max_delay_seconds: float = Field(300.0, gt=0)
    # Retry-After above this is clamped (later SDKs cap at 60 s).
    retry_after_cap_seconds: float = Field(300.0, gt=0)
    # 422 NO_PUBLISHED_AUTOMATION: someone may be publishing; retry slowly, then give up.
    no_published_automation_delay_seconds: float = Field(60.0, gt=0)
    no_published_automation_max_seconds: float = Field(3600.0, ge=0)


class BrewConfig(_Strict):
    base_url: str = "http://127.0.0.1:8787/api"
    # Never set in YAML: read from BREW_API_KEY or api_key_file.
    api_key: SecretStr | None = Field(None, exclude=True)
    api_key_file: str | None = None
    brand_id: str | None = None
    timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    max_connections: int = Field(20, ge=1)
    # "auto" reads run details with ?automationRunId= and switches to /runs/{id} if refused.
    api_shape: Literal["auto", "9.3", "10"] = "auto"
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    retry: RetryConfig = RetryConfig()


class DispatcherConfig(_Strict):
    concurrency: int = Field(8, ge=1, le=256)
    # JMESPath over the mapped payload; rows with the same value fire in outbox order.
    # null turns ordering off.
    ordering_key: PayloadPath | None = "email"
    idle_poll_seconds: float = Field(0.2, gt=0)
    # While Brew refuses the key (401/403), one request per interval probes it again.
    auth_probe_seconds: float = Field(30.0, gt=0)


class PollerConfig(_Strict):
    interval_seconds: float = Field(2.0, gt=0)
    # A run not at an end this long after its fire becomes timed_out.
    run_deadline_seconds: float = Field(6 * 3600.0, gt=0)
    cancel_on_deadline: bool = False
    # Share of the run-read budget the poller may use; the rest is left for other reads.
    read_budget_share: float = Field(1.0, gt=0, le=1.0)
    # Fetch node logs for failed / timed-out / canceled runs before dead-lettering them.
    fetch_logs: bool = True


class ServerConfig(_Strict):
    host: str = "0.0.0.0"
    port: int = Field(9400, ge=0, le=65535)


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"


# --------------------------------------------------------------------------- routes


ValueType = Literal["string", "int", "float", "bool", "date", "datetime", "decimal"]
_SOURCES = ("path", "value", "template", "fields")


class FieldSpec(_Strict):
    """How one payload field is made (see transforms.py and config/example.yaml).

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
            raise _config_problem(
                f"a payload field is a path (text) or a mapping, not {type(data).__name__}",
                "write a path such as event.data.email, or {value: ...} for a literal",
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [name for name in _SOURCES if name in self.model_fields_set]
        if len(given) != 1:
            found = f"found {' and '.join(given)}" if given else "found none"
            raise _config_problem(
                f"a payload field needs exactly one of path, value, template, fields ({found})",
                "keep one; for fallbacks list several paths (path: [a, b]) or add default:",
            )
        if self.each is not None and self.path is None:
            raise _config_problem(
                "each: maps the elements of an array, so it needs path: (the array)",
                "add path: pointing at the array, e.g. path: event.line_items",
            )
        if self.type is not None and (self.fields is not None or self.each is not None):
            raise _config_problem(
                "type: converts a single value; it cannot apply to fields: or each:",
                "move type: onto the fields inside",
            )
        set_ = self.model_fields_set
        if self.type != "decimal" and ({"exponent", "places"} & set_):
            raise _config_problem(
                "exponent: and places: only apply to type: decimal",
                "add type: decimal, or remove them",
            )
        if self.type not in ("date", "datetime") and "epoch_unit" in set_:
            raise _config_problem(
                "epoch_unit: only applies to type: date or datetime",
                "add type: datetime, or remove it",
            )
        return self


_ROUTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._\-]{1,249}")


class MatchConfig(_Strict):
    """Which events of the route's topics it takes. Every condition given must hold."""

    # The event's type (one value or a list of accepted values), read at type_path.
    type: Annotated[list[str], BeforeValidator(_as_list), Field(min_length=1)] | None = None
    type_path: ContextPath = "event.type"
    # Header equality; names are case-insensitive, a list accepts any of its values.
    headers: dict[str, Annotated[list[str], BeforeValidator(_as_list), Field(min_length=1)]] = {}
    # JMESPath over the context; the route takes the event only when it is truthy.
    filter: ContextPath | None = None

    @field_validator("headers")
    @classmethod
    def _lower_names(cls, headers: dict[str, list[str]]) -> dict[str, list[str]]:
        return {name.lower(): values for name, values in headers.items()}


class RouteConfig(_Strict):
    """One route: events from a source, matched, mapped to one Brew trigger's payload."""

    name: str
    description: str | None = None
    # The source: Kafka topics (a webhook source will be a sibling key, ``webhooks:``).
    topics: list[str] = Field(min_length=1)
    match: MatchConfig = MatchConfig()
    trigger: str = Field(min_length=1, max_length=256)
    payload: dict[str, FieldSpec] = Field(min_length=1)
    # Where the event's own id is; the default key is "{route}:{<id_path>}".
    id_path: ContextPath = "event.id"
    idempotency_key: (
        Annotated[list[KeyTemplate], BeforeValidator(_as_list), Field(min_length=1)] | None
    ) = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _ROUTE_NAME.fullmatch(name):
            raise _config_problem(
                f"route name {name!r} is not usable in an Idempotency-Key",
                "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
            )
        return name

    @field_validator("topics")
    @classmethod
    def _topics(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            if not _TOPIC_NAME.fullmatch(topic):
                raise _config_problem(
                    f"{topic!r} is not a valid Kafka topic name",
                    "use 1-249 letters, digits, '.', '_' or '-'",
                )
        return topics


class TriggerConfig(_Strict):
    """A Brew trigger the routes fire, with the payloadSchema payloads are checked against."""

    title: str | None = None
    # Brew's wire payloadSchema: {type: object, fields: [{key, type, required, ...}]}.
    payload_schema: dict[str, Any]


# --------------------------------------------------------------------------- root


@dataclass(frozen=True)
class _Source:
    """Where a loaded config came from: file, YAML line of every key, env vars set."""

    file: str
    marks: Mapping[Loc, int]
    scalars: frozenset[Loc]
    env: Mapping[str, str]  # BREW_BRIDGE_* names, upper case

    def where(self, loc: Loc) -> tuple[str, str, int | None]:
        """(file, key path, line) for a location; values set from the environment name it."""
        for size in range(len(loc), 0, -1):
            prefix = loc[:size]
            if all(isinstance(p, str) for p in prefix):
                var = ENV_PREFIX + "__".join(str(p).upper() for p in prefix)
                if var in self.env:
                    return "environment", var, None
        shown = loc
        line = None
        for size in range(len(loc), -1, -1):
            if loc[:size] in self.marks:
                line = self.marks[loc[:size]]
                if size < len(loc) and loc[:size] in self.scalars:
                    shown = loc[:size]  # deeper parts come from a shorthand the user never wrote
                break
        return self.file, _format_loc(shown), line


@dataclass(frozen=True)
class _LoadInputs:
    data: Mapping[str, Any]
    env: Mapping[str, str]


_LOADING: ContextVar[_LoadInputs | None] = ContextVar("brew_bridge_config_loading", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source over a given mapping (tests pass one; load_config its env)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        none = self.env_parse_none_str  # "null" -> None, as for os.environ
        return {
            name.lower(): None if none is not None and value == none else value
            for name, value in self._env.items()
        }


class _YamlDataSource(PydanticBaseSettingsSource):
    """The already-parsed YAML file (parsed by load_config, which keeps its line numbers)."""

    def __init__(self, settings_cls: type[BaseSettings], data: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class BridgeConfig(BaseSettings):
    """The whole configuration. Build it with :func:`load_config`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_parse_none_str="null",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaConfig = KafkaConfig()
    outbox: OutboxConfig = OutboxConfig()
    brew: BrewConfig = BrewConfig()
    dispatcher: DispatcherConfig = DispatcherConfig()
    poller: PollerConfig = PollerConfig()
    server: ServerConfig = ServerConfig()
    logging: LoggingConfig = LoggingConfig()
    # An event no route matches: kept as a no_route dead letter, or dropped (counted).
    no_route: Literal["dead_letter", "drop"] = "dead_letter"
    triggers: dict[str, TriggerConfig] = {}
    routes: list[RouteConfig] = []

    _source: _Source | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence, highest first: arguments > ``BREW_BRIDGE_*`` env > YAML > defaults.

        No .env file and no secrets directory: the API key has its own path (load_config).
        """
        loading = _LOADING.get()
        if loading is None:
            return (init_settings, env_settings)
        return (
            init_settings,
            _MappingEnvSource(settings_cls, loading.env),
            _YamlDataSource(settings_cls, loading.data),
        )

    @property
    def topics(self) -> frozenset[str]:
        """Every Kafka topic some route reads."""
        return frozenset(topic for route in self.routes for topic in route.topics)


# --------------------------------------------------------------------------- YAML


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_\-/]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


class _YamlReader:
    """Builds plain data from the YAML node tree, recording the line of every key."""

    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.loader = loader
        self.marks: dict[Loc, int] = {}
        self.scalars: set[Loc] = set()
        self.problems: list[ConfigProblem] = []
        self._active: set[int] = set()

    def problem(self, node: yaml.Node, loc: Loc, message: str, fix: str) -> None:
        line = node.start_mark.line + 1
        self.problems.append(ConfigProblem(self.file, _format_loc(loc), message, fix, line))

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.marks.setdefault(loc, node.start_mark.line + 1)
        if id(node) in self._active:
            self.problem(node, loc, "an alias refers to itself", "remove the recursive alias")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            return self._scalar(node, loc)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        self.loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                self.problem(
                    key_node,
                    (*loc, str(key)),
                    f"key {key!r} is not text (YAML reads it as {type(key).__name__})",
                    f'quote it: "{key_node.value}"',
                )
                key = str(key_node.value)
            if key in out:
                self.problem(
                    key_node,
                    (*loc, key),
                    f"key {key!r} appears twice in this mapping",
                    "keep one: YAML would silently use the last",
                )
            self.marks[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, (*loc, key))
        return out

    def _scalar(self, node: yaml.Node, loc: Loc) -> Any:
        self.scalars.add(loc)
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # keep dates as written: payload literals are JSON
        value = self.loader.construct_object(node, deep=True)
        if not isinstance(value, str | int | float | bool | NoneType):
            self.problem(
                node,
                loc,
                f"a {type(value).__name__} value is not JSON",
                "write text, a number, true/false or null",
            )
            return None
        return value


def _read_yaml(text: str, file: str) -> tuple[Any, _YamlReader]:
    loader = yaml.SafeLoader(text)
    reader = _YamlReader(file, loader)
    try:
        node = loader.get_single_node()
        data = reader.build(node, ()) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = f"not valid YAML: {exc.problem or exc.context}"
        reader.problems.append(
            ConfigProblem(file, "(file)", message, "fix the YAML syntax at this line", line)
        )
        data = None
    except yaml.YAMLError as exc:
        reader.problems.append(
            ConfigProblem(file, "(file)", f"not valid YAML: {exc}", "fix the YAML syntax")
        )
        data = None
    finally:
        loader.dispose()
    return data, reader


# --------------------------------------------------------------------------- problems

_TYPE_FIXES = {
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "float_type": "write a number",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write text (quote it if YAML reads it as a number or boolean)",
    "list_type": "write a list, e.g. [a, b]",
    "dict_type": "write a mapping of key: value",
    "model_type": "write a mapping of key: value",
    "model_attributes_type": "write a mapping of key: value",
    "too_short": "add at least one entry",
    "too_long": "shorten it",
    "string_too_short": "write a non-empty value",
    "string_too_long": "shorten it",
}


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            options = [a for a in get_args(annotation) if a is not NoneType]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The config model that a location inside BridgeConfig points at."""
    current: Any = BridgeConfig
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif get_origin(current) is list and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unknown_key_fix(loc: Loc) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    names = [n for n in model.model_fields if n != "api_key"] if model is not None else []
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if names:
        return f"remove it; keys allowed here: {', '.join(names)}"
    return "remove it"


def _problem(source: _Source, loc: Loc, message: str, fix: str) -> ConfigProblem:
    file, key_path, line = source.where(loc)
    return ConfigProblem(file=file, key_path=key_path, message=message, fix=fix, line=line)


def _validation_problems(exc: ValidationError, source: _Source) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc: Loc = tuple(p for p in error["loc"] if p != "[key]")
        kind = error["type"]
        ctx = error.get("ctx") or {}
        if kind == "extra_forbidden" and loc:
            message, fix = f"unknown key {loc[-1]!r}", _unknown_key_fix(loc)
        elif kind == "missing" and loc:
            message = f"required key {loc[-1]!r} is missing"
            fix = f"add {loc[-1]}: (see config/example.yaml)"
        elif kind == "config_problem":
            message, fix = str(ctx["message"]), str(ctx["fix"])
        elif kind == "literal_error":
            message, fix = error["msg"], f"write one of {ctx.get('expected')}"
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            message, fix = error["msg"], "write a value in the allowed range"
        else:
            message = error["msg"].removeprefix("Value error, ")
            fix = _TYPE_FIXES.get(kind, "see config/example.yaml for what this key takes")
        problems.append(_problem(source, loc, message, fix))
    return problems


def _schema_fit(
    loc: Loc, specs: Mapping[str, FieldSpec], fields: object, trigger: str, prefix: str
) -> Iterator[tuple[Loc, str, str]]:
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


def _semantic(
    triggers: Mapping[str, TriggerConfig],
    routes: Sequence[tuple[int, RouteConfig]],
    declared: Collection[str],
) -> Iterator[tuple[Loc, str, str]]:
    """Cross-checks over the triggers and routes that validated (``declared``: every
    trigger id written, valid or not, so a broken trigger is not also "undeclared")."""
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
        try:
            compile_mapping(route.name, route.payload)
        except ExpressionError as exc:
            yield (*at, "payload", *exc.loc), exc.message, exc.fix
        try:
            compile_key(route.name, route.idempotency_key, id_path=route.id_path)
        except ExpressionError as exc:
            yield (*at, "idempotency_key", *exc.loc), exc.message, exc.fix


def semantic_problems(config: BridgeConfig) -> list[ConfigProblem]:
    """What the models alone cannot see: undeclared triggers, duplicate route names, bad
    payloadSchemas, mappings that do not fit their trigger, ``item`` outside ``each``.

    Run by :func:`load_config`, and by ``routing.compile_routes`` for configs built in code.
    """
    source = config._source or _Source("<config>", {}, frozenset(), {})
    found = list(_semantic(config.triggers, list(enumerate(config.routes)), config.triggers))
    if not config.routes:
        found.insert(0, (("routes",), "no routes: the bridge would consume nothing", "add a route"))
    return [_problem(source, loc, message, fix) for loc, message, fix in found]


def _partial_semantic_problems(data: Mapping[str, Any], source: _Source) -> list[ConfigProblem]:
    """The cross-checks for a config that failed validation elsewhere, over the triggers
    and routes that are valid on their own, so one run still reports every problem."""
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
    found = _semantic(triggers, routes, declared)
    return [_problem(source, loc, message, fix) for loc, message, fix in found]


# --------------------------------------------------------------------------- loading


def _read_api_key(
    config: BridgeConfig, env: Mapping[str, str], source: _Source
) -> tuple[SecretStr | None, list[ConfigProblem]]:
    """BREW_API_KEY, else the file named by BREW_API_KEY_FILE, else brew.api_key_file."""
    value = env.get(API_KEY_ENV)
    if value is not None:
        if not value.strip():
            return None, [
                ConfigProblem(
                    "environment", API_KEY_ENV, "is set but empty", "set it to the Brew API key"
                )
            ]
        return SecretStr(value.strip()), []
    from_env = env.get(API_KEY_FILE_ENV)
    path = from_env or config.brew.api_key_file
    if not path:
        return None, []

    def problem(message: str) -> ConfigProblem:
        if from_env:
            return ConfigProblem("environment", API_KEY_FILE_ENV, message, "mount the secret there")
        fix = f"mount the secret there, or set {API_KEY_ENV}"
        return _problem(source, ("brew", "api_key_file"), message, fix)

    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return None, [problem(f"cannot read the API key file {path}: {reason}")]
    if not text:
        return None, [problem(f"the API key file {path} is empty")]
    return SecretStr(text), []


@contextmanager
def _loading(inputs: _LoadInputs) -> Iterator[None]:
    token = _LOADING.set(inputs)
    try:
        yield
    finally:
        _LOADING.reset(token)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> BridgeConfig:
    """Read, validate and return the config at ``path`` with ``env`` (default os.environ).

    Raises :class:`ConfigError` listing every problem found, each with the file, the key
    path, the YAML line and the fix. The Brew API key is read from ``BREW_API_KEY``, else
    from the file named by ``BREW_API_KEY_FILE`` or ``brew.api_key_file``; never from the
    YAML (a key there is an error) and never from ``BREW_BRIDGE_BREW__API_KEY``. A config
    without a key is valid (``check`` and ``map`` do not need one); the worker refuses it.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        problem = ConfigProblem(
            file, "(file)", f"cannot read the config file: {reason}", "pass an existing YAML file"
        )
        raise ConfigError([problem]) from None
    data, reader = _read_yaml(text, file)
    if data is None and reader.problems:
        raise ConfigError(reader.problems)  # not YAML: nothing further can be checked
    return _build(data, file, reader.marks, frozenset(reader.scalars), env, reader.problems)


def config_from_mapping(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> BridgeConfig:
    """:func:`load_config` for data already parsed (tests, generated configs): the same
    checks, env overrides and API key sources, problems without line numbers."""
    return _build(data, "<mapping>", {}, frozenset(), env, [])


def _build(
    data: object,
    file: str,
    marks: Mapping[Loc, int],
    scalars: frozenset[Loc],
    env: Mapping[str, str] | None,
    problems: list[ConfigProblem],
) -> BridgeConfig:
    environ = dict(os.environ if env is None else env)
    problems = list(problems)
    bridge_env = {k.upper(): v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)}
    source = _Source(file, marks, scalars, bridge_env)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.append(
            ConfigProblem(
                file,
                "(top level)",
                "the config must be a mapping of sections",
                "see config/example.yaml",
                1 if marks else None,
            )
        )
        raise ConfigError(problems)
    clean = _without_yaml_secrets(dict(data), source, problems)
    if bridge_env.pop(f"{ENV_PREFIX}BREW__API_KEY", None) is not None:
        problems.append(
            ConfigProblem(
                "environment",
                f"{ENV_PREFIX}BREW__API_KEY",
                "the Brew API key is not read from BREW_BRIDGE_* variables",
                f"set {API_KEY_ENV} or {API_KEY_FILE_ENV} instead",
            )
        )
    config: BridgeConfig | None = None
    try:
        with _loading(_LoadInputs(data=clean, env=bridge_env)):
            config = BridgeConfig()
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, source))
        problems.extend(_partial_semantic_problems(clean, source))
    except SettingsError as exc:
        problems.append(
            ConfigProblem(
                "environment",
                ENV_PREFIX + "*",
                str(exc),
                "sections and lists in BREW_BRIDGE_* variables are written as JSON",
            )
        )
    if config is not None:
        config._source = source
        problems.extend(semantic_problems(config))
        api_key, key_problems = _read_api_key(config, environ, source)
        problems.extend(key_problems)
        if api_key is not None:
            brew = config.brew.model_copy(update={"api_key": api_key})
            config = config.model_copy(update={"brew": brew})
    if problems:
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems)
    assert config is not None
    return config


def _without_yaml_secrets(
    data: dict[str, Any], source: _Source, problems: list[ConfigProblem]
) -> dict[str, Any]:
    """Refuse (and drop, so validation goes on) an API key written into the YAML."""
    fix = f"set {API_KEY_ENV} or brew.api_key_file"
    message = "the Brew API key is never read from the config file"
    data = dict(data)
    if "api_key" in data:
        problems.append(_problem(source, ("api_key",), message, fix))
        del data["api_key"]
    brew = data.get("brew")
    if isinstance(brew, dict) and "api_key" in brew:
        problems.append(_problem(source, ("brew", "api_key"), message, fix))
        data["brew"] = {k: v for k, v in brew.items() if k != "api_key"}
    return data
