"""The whole configuration (:class:`BridgeConfig`), how it is loaded, and its routes
compiled once.

The YAML file is validated by the models at start; ``BREW_BRIDGE_*`` environment
variables (``__`` for nesting) override it; secrets (the Brew API key) come only from
the environment or a mounted file, never from the YAML.

Precedence, highest first (:meth:`BridgeConfig.settings_customise_sources`): constructor
arguments, ``BREW_BRIDGE_*`` environment variables, the YAML file, model defaults.
:func:`load_config` reports every problem at once (:class:`~brew_bridge.errors.ConfigError`)
with the file, the key path, the YAML line and the fix: structure and types, unknown
keys (with the closest valid key), expressions and templates that do not compile, routes
naming undeclared triggers, payload mappings that do not fit the trigger's payloadSchema,
a Brew timeout longer than a rate-limit window.

Those last checks compile the routes; the result is kept on the config and
:func:`compiled_routes` hands it out, so a process compiles its routes once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import PrivateAttr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from brew_bridge.config import sections
from brew_bridge.config.checks import checked_routes, partial_problems
from brew_bridge.config.problems import (
    ENV_PREFIX,
    Source,
    checked,
    config_problem,
    problem,
    validation_problems,
)
from brew_bridge.config.queues import SourcesConfig
from brew_bridge.config.routes import NAME, RouteConfig, TriggerConfig
from brew_bridge.config.secrets import (
    read_api_key,
    read_target_key,
    refuse_env_api_key,
    without_yaml_secrets,
)
from brew_bridge.config.targets import BoringMarketingConfig, PinkfishConfig, TargetConfig
from brew_bridge.config.webhooks import WebhooksConfig, read_webhook_secrets
from brew_bridge.config.yamlpos import Loc, read_yaml
from brew_bridge.errors import ConfigError, ConfigProblem
from brew_bridge.events import Routed, SourceRecord
from brew_bridge.mapping.expressions import compile_expression
from brew_bridge.mapping.routing import CompiledRoutes, route_record

__all__ = [
    "BridgeConfig",
    "compiled_routes",
    "config_from_mapping",
    "config_router",
    "load_config",
]

# A path over the mapped payload (dispatcher.ordering_key), checked where the sections
# meet the expression language: sections.py compiles nothing.
_check_ordering_key = checked(compile_expression, at=("ordering_key",))


def _check_timeout_fits_windows(
    brew: sections.BrewConfig | PinkfishConfig | BoringMarketingConfig,
    section: str = "brew",
    under: Loc = (),
) -> None:
    """``<section>.timeout_seconds`` at most every ``rate_limits.*.window_seconds``.

    The budgets count a request from its answer; one that can take longer than its
    window lands in a later window than the one it was granted in, and the pacing no
    longer holds. A cross-field check (sections.py places no problems), so it is here.
    ``under``: where the section is, relative to the field being validated.
    """
    limits = brew.rate_limits
    windows = {
        "fire": limits.fire,
        "run_read": limits.run_read,
        "trigger_read": limits.trigger_read,
    }
    short = {
        name: rl.window_seconds
        for name, rl in windows.items()
        if brew.timeout_seconds > rl.window_seconds
    }
    if not short:
        return
    shortest = min(short, key=lambda name: short[name])
    window = short[shortest]
    at: Loc = (*under, "timeout_seconds")
    written = [
        name
        for name in short
        if name in limits.model_fields_set and "window_seconds" in windows[name].model_fields_set
    ]
    if "timeout_seconds" not in brew.model_fields_set and written:
        # The default timeout met a window someone wrote: point at what was written.
        at = (*under, "rate_limits", min(written, key=lambda name: short[name]), "window_seconds")
    named = ", ".join(f"rate_limits.{name}.window_seconds ({short[name]:g} s)" for name in short)
    raise config_problem(
        f"{section}.timeout_seconds ({brew.timeout_seconds:g} s) is longer than {named}: a "
        "request could outlive its rate-limit window, and the budget would no longer "
        "keep to the limit",
        f"set {section}.timeout_seconds to at most {window:g}, or make "
        f"{section}.rate_limits.{shortest}.window_seconds at least {brew.timeout_seconds:g}"
        + (" (and the others named)" if len(short) > 1 else ""),
        at,
    )


class _Compiled:
    """The routes compiled from a config, kept on it (:func:`compiled_routes`).

    Not part of the config's value: every holder equals every other, so configs compare
    as their fields do; a copy or a pickle gets an empty one (compiled routes hold
    closures, and a spawned routing child compiles its own).
    """

    __slots__ = ("inputs", "routes")

    def __init__(
        self, inputs: tuple[object, ...] = (), routes: CompiledRoutes | None = None
    ) -> None:
        self.inputs = inputs
        self.routes = routes

    def get(self, inputs: tuple[object, ...]) -> CompiledRoutes | None:
        """The routes, if compiled from these very objects (a copy of the config with
        other routes or triggers compiles its own)."""
        if self.routes is None or len(inputs) != len(self.inputs):
            return None
        same = all(a is b for a, b in zip(inputs, self.inputs, strict=True))
        return self.routes if same else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Compiled)

    def __hash__(self) -> int:
        return 0

    def __reduce__(self) -> tuple[type[_Compiled], tuple[()]]:
        return _Compiled, ()

    def __deepcopy__(self, memo: dict[int, Any]) -> _Compiled:
        return _Compiled()


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

    kafka: sections.KafkaConfig = sections.KafkaConfig()
    outbox: sections.OutboxConfig = sections.OutboxConfig()
    brew: sections.BrewConfig = sections.BrewConfig()
    dispatcher: sections.DispatcherConfig = sections.DispatcherConfig()
    poller: sections.PollerConfig = sections.PollerConfig()
    server: sections.ServerConfig = sections.ServerConfig()
    logging: sections.LoggingConfig = sections.LoggingConfig()
    shutdown: sections.ShutdownConfig = sections.ShutdownConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    # Queue and stream sources (RabbitMQ, NATS JetStream, Redis Streams) by kind and name.
    sources: SourcesConfig = SourcesConfig()
    # An event no route matches: kept as a no_route dead letter, or dropped (counted).
    no_route: Literal["dead_letter", "drop"] = "dead_letter"
    triggers: dict[str, TriggerConfig] = {}
    # Fire-and-follow targets beside Brew, by name (routes[].target names one).
    targets: dict[str, TargetConfig] = {}
    routes: list[RouteConfig] = []

    _source: Source | None = PrivateAttr(default=None)
    _compiled: _Compiled = PrivateAttr(default_factory=_Compiled)

    @field_validator("dispatcher")
    @classmethod
    def _ordering_key(cls, dispatcher: sections.DispatcherConfig) -> sections.DispatcherConfig:
        if dispatcher.ordering_key is not None:
            _check_ordering_key(dispatcher.ordering_key)
        return dispatcher

    @field_validator("brew")
    @classmethod
    def _timeout_fits_windows(cls, brew: sections.BrewConfig) -> sections.BrewConfig:
        _check_timeout_fits_windows(brew)
        return brew

    @field_validator("targets")
    @classmethod
    def _target_names(cls, targets: dict[str, TargetConfig]) -> dict[str, TargetConfig]:
        for name, target in targets.items():
            if name == "brew":
                raise config_problem(
                    "the target name brew is the brew: section's",
                    "configure Brew under brew:, or give this target another name",
                    (name,),
                )
            if not NAME.fullmatch(name):
                raise config_problem(
                    f"target name {name!r} is not usable in metric labels and logs",
                    "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                    (name,),
                )
            _check_timeout_fits_windows(target, f"targets.{name}", (name,))
        return targets

    @property
    def target_kinds(self) -> dict[str, str]:
        """Every target's kind by name, Brew's (``brew``) included."""
        return {"brew": "brew", **{name: t.kind for name, t in self.targets.items()}}

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

    def _route_inputs(self) -> tuple[object, ...]:
        """What the compiled routes are made from."""
        return (
            self.triggers,
            self.routes,
            self.no_route,
            self.dispatcher,
            self.kafka,
            self.webhooks,
            self.sources,
            self.targets,
        )

    def _checked_routes(self) -> tuple[CompiledRoutes | None, list[ConfigProblem]]:
        """The routes compiled, or None and every problem the models alone cannot see."""
        source = self._source or Source("<config>", {}, frozenset(), {})
        routes, problems = checked_routes(
            self.triggers,
            list(enumerate(self.routes)),
            self.triggers,
            source,
            no_route=self.no_route,
            ordering_key=self.dispatcher.ordering_key,
            max_record_bytes=self.kafka.max_record_bytes,
            webhooks=self.webhooks.sources,
            queues=self.sources.declared(),
            targets=self.target_kinds,
            branded={
                name
                for name, target in self.targets.items()
                if isinstance(target, BoringMarketingConfig) and target.brand_id
            },
        )
        if not self.routes:
            message = "no routes: the bridge would consume nothing"
            return None, [problem(source, ("routes",), message, "add a route"), *problems]
        return routes, problems


def config_router(config: BridgeConfig) -> Callable[[SourceRecord], Routed]:
    """The router for a config's routes (module level, so a routing child can build it)."""
    return partial(route_record, routes=compiled_routes(config))


def compiled_routes(config: BridgeConfig) -> CompiledRoutes:
    """The routes of ``config``, compiled once per process.

    :func:`load_config` compiles them as it checks the config; a config built in code
    (or copied with other routes, or unpickled in a routing child) compiles on first use.
    Raises :class:`ConfigError` with the problems :func:`load_config` would report.
    """
    inputs = config._route_inputs()
    routes = config._compiled.get(inputs)
    if routes is None:
        routes, problems = config._checked_routes()
        if routes is None:
            raise ConfigError(problems)
        config._compiled = _Compiled(inputs, routes)
    return routes


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
        unreadable = ConfigProblem(
            file, "(file)", f"cannot read the config file: {reason}", "pass an existing YAML file"
        )
        raise ConfigError([unreadable]) from None
    data, reader = read_yaml(text, file)
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
    source = Source(file, marks, scalars, bridge_env)
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
    clean = without_yaml_secrets(dict(data), source, problems)
    problems.extend(refuse_env_api_key(bridge_env))
    config: BridgeConfig | None = None
    try:
        with _loading(_LoadInputs(data=clean, env=bridge_env)):
            config = BridgeConfig()
    except ValidationError as exc:
        problems.extend(validation_problems(exc, source, BridgeConfig))
        problems.extend(partial_problems(clean, source))
    except SettingsError as exc:
        problems.append(
            ConfigProblem(
                "environment",
                ENV_PREFIX + "*",
                str(exc),
                "sections and lists in BREW_BRIDGE_* variables are written as JSON",
            )
        )
    routes = None
    if config is not None:
        config._source = source
        routes, route_problems = config._checked_routes()
        problems.extend(route_problems)
        api_key, key_problems = read_api_key(config.brew.api_key_file, environ, source)
        problems.extend(key_problems)
        if api_key is not None:
            brew = config.brew.model_copy(update={"api_key": api_key})
            config = config.model_copy(update={"brew": brew})
        targets = {}
        for name, target in config.targets.items():
            key, target_problems = read_target_key(
                name, target.api_key_env, target.api_key_file, environ, source
            )
            problems.extend(target_problems)
            targets[name] = target.model_copy(update={"api_key": key})
        config = config.model_copy(update={"targets": targets})
        webhooks, secret_problems = read_webhook_secrets(config.webhooks, environ, source)
        problems.extend(secret_problems)
        config = config.model_copy(update={"webhooks": webhooks})
    if problems:
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems)
    assert config is not None
    assert routes is not None  # no problems: the routes compiled
    config._compiled = _Compiled(config._route_inputs(), routes)
    return config
