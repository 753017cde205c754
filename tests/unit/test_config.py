"""Config loading: every kind of problem is reported with file, key path, line and fix."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from brew_bridge.config import (
    BridgeConfig,
    FieldSpec,
    checks,
    compiled_routes,
    config_from_mapping,
    load_config,
)
from brew_bridge.errors import ConfigError, ConfigProblem
from brew_bridge.mapping.routing import CompiledRoutes

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"

BASE = """
triggers:
  tri_receipt:
    payload_schema:
      type: object
      fields:
        - {key: email, type: string, required: true}
        - {key: amount, type: string, required: true}
        - {key: note, type: string, required: false}
routes:
  - name: receipt
    topics: [payments]
    match: {type: invoice.paid}
    trigger: tri_receipt
    payload:
      email: event.data.object.customer_email
      amount:
        path: event.data.object.amount_paid
        type: decimal
        exponent: 2
"""

WriteConfig = Callable[[str], Path]


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return info.value.problems


def only(problems: list[ConfigProblem], key_path: str) -> ConfigProblem:
    found = [p for p in problems if p.key_path == key_path]
    assert len(found) == 1, f"{key_path}: {problems}"
    return found[0]


# --------------------------------------------------------------------------- valid


def test_base_config_loads(write_config: WriteConfig) -> None:
    config = load_config(write_config(BASE), env={})
    assert [r.name for r in config.routes] == ["receipt"]
    assert config.topics == frozenset({"payments"})
    assert config.routes[0].payload["email"].path == ["event.data.object.customer_email"]
    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"  # a default


def test_example_config_is_valid(example_config: BridgeConfig) -> None:
    assert example_config.topics == frozenset({"signups", "payments", "orders", "leads"})
    brew_routes = [r for r in example_config.routes if r.target == "brew"]
    assert {r.trigger for r in brew_routes} == set(example_config.triggers)
    assert example_config.target_kinds == {
        "brew": "brew",
        "research": "pinkfish",
        "growth": "boring_marketing",
    }
    assert {r.target for r in example_config.routes} == set(example_config.target_kinds)
    assert example_config.outbox.path == "brew-bridge.db"
    assert example_config.brew.base_url == "http://127.0.0.1:8787/api"
    assert example_config.kafka.bootstrap_servers == "127.0.0.1:9092"
    compiled_routes(example_config)  # no ConfigError


# --------------------------------------------------------------------------- unknown keys


def test_unknown_key_names_line_and_closest_key(write_config: WriteConfig) -> None:
    path = write_config("kafka:\n  bootstrap_srvers: kafka:9092\n" + BASE)
    problem = only(problems_of(path), "kafka.bootstrap_srvers")
    assert problem.file == str(path)
    assert problem.line == 2
    assert "unknown key 'bootstrap_srvers'" in problem.message
    assert problem.fix == "did you mean 'bootstrap_servers'?"
    assert str(problem).startswith(f"{path}:2: kafka.bootstrap_srvers: unknown key")


def test_unknown_key_inside_a_payload_field(write_config: WriteConfig) -> None:
    path = write_config(BASE.replace("path: event.data.object.amount_paid", "pth: x"))
    problem = only(problems_of(path), "routes[0].payload.amount.pth")
    assert problem.line == line_of(path, "pth: x")
    assert problem.fix == "did you mean 'path'?"


def test_unknown_key_without_a_close_match_lists_the_valid_ones(write_config: WriteConfig) -> None:
    path = write_config("server:\n  colour: blue\n" + BASE)
    problem = only(problems_of(path), "server.colour")
    assert problem.fix == "remove it; keys allowed here: host, port"


def test_every_problem_is_reported_at_once(write_config: WriteConfig) -> None:
    text = (
        "kafka:\n  max_batch_records: lots\n"
        "server:\n  prot: 80\n"
        "no_route: ignore\n"
        + BASE.replace("trigger: tri_receipt", "trigger: tri_recipt").replace(
            "event.data.object.customer_email", "event.data.object.[oops"
        )
    )
    path = write_config(text)
    problems = problems_of(path)
    keys = {p.key_path for p in problems}
    assert {
        "kafka.max_batch_records",
        "server.prot",
        "no_route",
        "routes[0].payload.email",
    } <= keys
    assert all(p.line is not None for p in problems)
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)
    literal = only(problems, "no_route")
    assert "'dead_letter' or 'drop'" in literal.fix


def test_cross_checks_still_run_when_another_section_is_invalid(write_config: WriteConfig) -> None:
    path = write_config(
        "server:\n  port: eighty\n" + BASE.replace("trigger: tri_receipt", "trigger: tri_x")
    )
    problems = problems_of(path)
    assert {p.key_path for p in problems} == {"server.port", "routes[0].trigger"}


def test_type_error_names_key_and_line(write_config: WriteConfig) -> None:
    path = write_config("server:\n  port: eighty\n" + BASE)
    problem = only(problems_of(path), "server.port")
    assert problem.line == 2
    assert problem.fix == "write a whole number"


def test_missing_required_key(write_config: WriteConfig) -> None:
    path = write_config(BASE.replace("    trigger: tri_receipt\n", ""))
    problem = only(problems_of(path), "routes[0].trigger")
    assert "required key 'trigger' is missing" in problem.message
    assert problem.line == line_of(path, "- name: receipt")


# --------------------------------------------------------------------------- YAML itself


def test_yaml_syntax_error_has_a_line(write_config: WriteConfig) -> None:
    path = write_config(BASE + "  - name: [unclosed\n")
    (problem,) = problems_of(path)
    assert problem.key_path == "(file)"
    assert "not valid YAML" in problem.message
    assert problem.line is not None
    assert problem.line >= line_of(path, "[unclosed")


def test_duplicate_yaml_key_is_an_error(write_config: WriteConfig) -> None:
    path = write_config("server:\n  port: 1\n  port: 2\n" + BASE)
    problem = only(problems_of(path), "server.port")
    assert problem.line == 3
    assert "appears twice" in problem.message


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/bridge.yaml", env={})
    (problem,) = info.value.problems
    assert problem.file == "/nonexistent/bridge.yaml"
    assert "cannot read" in problem.message


def test_top_level_must_be_a_mapping(write_config: WriteConfig) -> None:
    (problem,) = problems_of(write_config("- just\n- a list\n"))
    assert "mapping of sections" in problem.message


def test_yaml_dates_stay_text_in_literals(write_config: WriteConfig) -> None:
    text = BASE + "      note: {value: 2024-05-28}\n"
    config = load_config(write_config(text), env={})
    assert config.routes[0].payload["note"].value == "2024-05-28"


# --------------------------------------------------------------------------- expressions


def test_bad_jmespath_names_the_expression_path(write_config: WriteConfig) -> None:
    path = write_config(
        BASE.replace("event.data.object.amount_paid", "event.data.object.amount_paid[?")
    )
    problem = only(problems_of(path), "routes[0].payload.amount.path")
    assert "invalid JMESPath expression" in problem.message
    assert problem.line == line_of(path, "amount_paid[?")


def test_fallback_paths_point_at_the_bad_entry(write_config: WriteConfig) -> None:
    path = write_config(
        BASE.replace(
            "path: event.data.object.amount_paid",
            "path: [event.data.object.amount_paid, 'event.a-b']",
        )
    )
    problem = only(problems_of(path), "routes[0].payload.amount.path[1]")
    assert 'quote names that contain "-"' in problem.fix


def test_path_outside_the_context_is_refused(write_config: WriteConfig) -> None:
    path = write_config(
        BASE.replace("email: event.data.object.customer_email", "email: data.email")
    )
    problem = only(problems_of(path), "routes[0].payload.email")
    assert "'data', which is not in the context" in problem.message
    assert "event.data" in problem.fix


def test_null_literal_hint(write_config: WriteConfig) -> None:
    path = write_config(
        BASE.replace("match: {type: invoice.paid}", "match: {filter: 'event.x == null'}")
    )
    problem = only(problems_of(path), "routes[0].match.filter")
    assert "`null`" in problem.fix


def test_unknown_jmespath_function(write_config: WriteConfig) -> None:
    path = write_config(
        BASE.replace("match: {type: invoice.paid}", "match: {filter: 'lenght(event.x)'}")
    )
    problem = only(problems_of(path), "routes[0].match.filter")
    assert problem.fix == "did you mean length()?"


def test_bad_template(write_config: WriteConfig) -> None:
    path = write_config(BASE + "      note: {template: 'Hello {event.name'}\n")
    problem = only(problems_of(path), "routes[0].payload.note.template")
    assert "never closed" in problem.message


def test_item_outside_each_is_refused(write_config: WriteConfig) -> None:
    path = write_config(BASE + "      note: item.title\n")
    problem = only(problems_of(path), "routes[0].payload.note")
    assert "'item'" in problem.message


# --------------------------------------------------------------------------- field specs


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "{path: event.a, value: 1}",
            "exactly one of path, value, template, fields (found path and value)",
        ),
        ("{default: x}", "found none"),
        ("{template: x, each: {path: item.a}}", "each: maps the elements of an array"),
        ("{path: event.a, exponent: 2}", "only apply to type: decimal"),
        ("{path: event.a, type: int, epoch_unit: ms}", "epoch_unit: only applies"),
        ("{fields: {a: event.a}, type: string}", "cannot apply to fields: or each:"),
        ("42", "a payload field is a path (text) or a mapping, not int"),
    ],
)
def test_field_spec_shape(write_config: WriteConfig, spec: str, message: str) -> None:
    path = write_config(BASE + f"      note: {spec}\n")
    problem = only(problems_of(path), "routes[0].payload.note")
    assert message in problem.message
    assert problem.line == line_of(path, "note:")


def test_type_must_be_known(write_config: WriteConfig) -> None:
    path = write_config(BASE + "      note: {path: event.a, type: money}\n")
    problem = only(problems_of(path), "routes[0].payload.note.type")
    assert "decimal" in problem.fix


# --------------------------------------------------------------------------- cross references


def test_unknown_trigger_suggests_the_declared_one(write_config: WriteConfig) -> None:
    path = write_config(BASE.replace("trigger: tri_receipt", "trigger: tri_reciept"))
    problem = only(problems_of(path), "routes[0].trigger")
    assert "tri_reciept" in problem.message
    assert "not declared" in problem.message
    assert problem.fix == "did you mean 'tri_receipt'?"
    assert problem.line == line_of(path, "trigger: tri_reciept")


def test_duplicate_route_names(write_config: WriteConfig) -> None:
    route = BASE[BASE.index("  - name: receipt") :]
    path = write_config(BASE + route)
    problem = only(problems_of(path), "routes[1].name")
    assert "already used by routes[0]" in problem.message


def test_invalid_payload_schema(write_config: WriteConfig) -> None:
    path = write_config(
        BASE.replace(
            "{key: email, type: string, required: true}", "{key: email, type: text, required: true}"
        )
    )
    problems = [p for p in problems_of(path) if p.key_path == "triggers.tri_receipt.payload_schema"]
    messages = " | ".join(p.message for p in problems)
    assert "type must be one of" in messages
    assert 'must contain {key: "email", type: "string", required: true}' in messages
    assert all(p.line == line_of(path, "payload_schema:") for p in problems)


def test_payload_key_not_in_schema_suggests_the_schema_key(write_config: WriteConfig) -> None:
    path = write_config(BASE + "      nots: event.a\n")
    problem = only(problems_of(path), "routes[0].payload.nots")
    assert "not in tri_receipt's payloadSchema" in problem.message
    assert problem.fix == "rename it to 'note'"


def test_required_schema_key_not_mapped(write_config: WriteConfig) -> None:
    path = write_config(BASE.replace("      email: event.data.object.customer_email\n", ""))
    problem = only(problems_of(path), "routes[0].payload")
    assert "requires payload key 'email'" in problem.message


def test_no_routes_is_an_error(write_config: WriteConfig) -> None:
    path = write_config("server: {port: 9400}\n")
    problem = only(problems_of(path), "routes")
    assert "no routes" in problem.message


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("'{event.id}'", "no {route} placeholder"),
        ("'{route}'", "takes nothing from the event"),
        ("'{route}:{event.id'", "never closed"),
    ],
)
def test_bad_key_templates(write_config: WriteConfig, template: str, message: str) -> None:
    path = write_config(BASE + f"    idempotency_key: {template}\n")
    problem = only(problems_of(path), "routes[0].idempotency_key")
    assert message in problem.message


def test_bad_route_and_topic_names(write_config: WriteConfig) -> None:
    path = write_config(
        BASE.replace("name: receipt", "name: 'my receipt'").replace("[payments]", "['pay ments']")
    )
    problems = problems_of(path)
    assert "Idempotency-Key" in only(problems, "routes[0].name").message
    assert "not a valid Kafka topic name" in only(problems, "routes[0].topics").message


def test_bad_ordering_key(write_config: WriteConfig) -> None:
    path = write_config("dispatcher:\n  ordering_key: 'email['\n" + BASE)
    problem = only(problems_of(path), "dispatcher.ordering_key")
    assert "invalid JMESPath" in problem.message


def test_compiled_routes_checks_configs_built_in_code(example_config: BridgeConfig) -> None:
    broken = example_config.model_copy(update={"triggers": {}})
    with pytest.raises(ConfigError) as info:
        compiled_routes(broken)
    assert any("not declared under triggers" in p.message for p in info.value.problems)


def test_routes_compile_once_while_loading(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles: list[object] = []
    compile_routes = checks.compile_routes

    def counted(*args: Any, **kwargs: Any) -> CompiledRoutes:
        compiles.append(args)
        return compile_routes(*args, **kwargs)

    monkeypatch.setattr(checks, "compile_routes", counted)
    config = load_config(write_config(BASE), env={})
    routes = compiled_routes(config)
    assert compiled_routes(config) is routes
    assert compiled_routes(config.model_copy()) is routes  # same routes: nothing to redo
    assert len(compiles) == 1


def test_a_pickled_config_compiles_its_own_routes(example_config: BridgeConfig) -> None:
    """What a spawned routing child gets: the config without the parent's closures."""
    routes = compiled_routes(example_config)
    child = pickle.loads(pickle.dumps(example_config))  # noqa: S301 (bytes made here)
    assert child == example_config
    assert child.routes == example_config.routes
    child_routes = compiled_routes(child)
    assert child_routes is not routes
    assert [r.name for r in child_routes.routes] == [r.name for r in routes.routes]


def test_a_config_built_in_code_compiles_on_first_use() -> None:
    data = yaml.safe_load(BASE)
    config = BridgeConfig.model_validate(data)
    routes = compiled_routes(config)
    assert [(r.name, r.target, r.action) for r in routes.routes] == [
        ("receipt", "brew", "tri_receipt")
    ]
    assert compiled_routes(config) is routes
    assert config == BridgeConfig.model_validate(data)  # the kept routes are not its value


def test_config_from_mapping() -> None:
    data = yaml.safe_load(BASE)
    config = config_from_mapping(data, env={"BREW_BRIDGE_SERVER__PORT": "9500"})
    assert config.server.port == 9500
    data["routes"][0]["trigger"] = "tri_nope"
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data, env={})
    (problem,) = info.value.problems
    assert (problem.file, problem.key_path, problem.line) == (
        "<mapping>",
        "routes[0].trigger",
        None,
    )


# --------------------------------------------------------------------------- environment


def test_env_overrides_yaml_and_defaults(write_config: WriteConfig) -> None:
    path = write_config("kafka:\n  bootstrap_servers: yaml:9092\n  group_id: from-yaml\n" + BASE)
    env = {
        "BREW_BRIDGE_KAFKA__BOOTSTRAP_SERVERS": "env:9092",
        "BREW_BRIDGE_BREW__BASE_URL": "http://brew.test/api",
        "BREW_BRIDGE_OUTBOX__PATH": "/data/outbox.db",
        "BREW_BRIDGE_SERVER__PORT": "9555",
        "brew_bridge_no_route": "drop",  # names are case-insensitive
        "BREW_BRIDGE_DISPATCHER__ORDERING_KEY": "null",
    }
    config = load_config(path, env=env)
    assert config.kafka.bootstrap_servers == "env:9092"  # env beats YAML
    assert config.kafka.group_id == "from-yaml"  # YAML beats default; siblings kept
    assert config.kafka.client_id == "brew-bridge"  # default
    assert config.brew.base_url == "http://brew.test/api"
    assert config.outbox.path == "/data/outbox.db"
    assert config.server.port == 9555
    assert config.no_route == "drop"
    assert config.dispatcher.ordering_key is None


def test_invalid_env_value_names_the_variable(write_config: WriteConfig) -> None:
    path = write_config(BASE)
    problem = only(
        problems_of(path, {"BREW_BRIDGE_SERVER__PORT": "eighty"}), "BREW_BRIDGE_SERVER__PORT"
    )
    assert problem.file == "environment"
    assert problem.line is None
    assert problem.fix == "write a whole number"


def test_env_json_that_does_not_parse(write_config: WriteConfig) -> None:
    path = write_config(BASE)
    problems = problems_of(path, {"BREW_BRIDGE_ROUTES": "[not json"})
    assert problems[0].file == "environment"
    assert "JSON" in problems[0].fix


def test_other_env_vars_are_ignored(write_config: WriteConfig) -> None:
    config = load_config(write_config(BASE), env={"KAFKA__BOOTSTRAP_SERVERS": "x", "PATH": "/bin"})
    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"


# --------------------------------------------------------------------------- example.yaml


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[type[BaseModel]]:
    if model in seen:
        return
    seen.add(model)
    yield model
    for field in model.model_fields.values():
        for inner in _nested_types(field.annotation):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                yield from _models(inner, seen)


def _nested_types(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _nested_types(arg)
    for arg in getattr(annotation, "__metadata__", ()) or ():
        yield from _nested_types(arg)


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    missing = []
    models = list(_models(BridgeConfig, set()))
    assert FieldSpec in models
    for model in models:
        for name, field in model.model_fields.items():
            if field.exclude:
                continue  # secrets read from elsewhere: on purpose never a YAML key
            if not re.search(rf"(^|[\s{{,#]){name}:", text, re.MULTILINE):
                missing.append(f"{model.__name__}.{name}")
    assert not missing, f"keys not documented in config/example.yaml: {missing}"


def test_example_sets_every_section_key_explicitly() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    config = load_config(EXAMPLE, env={})
    for section in ("kafka", "outbox", "brew", "dispatcher", "poller", "server", "logging"):
        model = getattr(config, section)
        written = set(data[section])
        expected = {n for n in type(model).model_fields if n != "api_key"}
        assert written == expected, section


def test_sim_seed_matches_the_example_triggers(example_config: BridgeConfig) -> None:
    seed = yaml.safe_load((REPO / "config" / "sim-seed.yaml").read_text())
    assert set(seed["triggers"]) == set(example_config.triggers)
    for trigger_id, trigger in example_config.triggers.items():
        seeded = seed["triggers"][trigger_id]
        assert seeded["payloadSchema"] == trigger.payload_schema, trigger_id
        published = [a for a in seeded["automations"] if a["published"]]
        assert published, f"{trigger_id} has no published automation"
        assert all(1000 <= a["durationMs"] <= 3000 for a in seeded["automations"])
    outcomes = [a["outcome"] for t in seed["triggers"].values() for a in t["automations"]]
    assert "failed" in outcomes
    assert "completed" in outcomes
    dunning = seed["triggers"]["tri_dunning"]["automations"]
    assert {a["outcome"] for a in dunning} == {"completed", "failed"}


# --------------------------------------------------------------------------- brew timeout


def test_a_brew_timeout_longer_than_a_rate_window_is_refused(write_config: WriteConfig) -> None:
    path = write_config(
        "brew:\n  timeout_seconds: 45\n  rate_limits:\n    fire:\n      limit: 10\n"
        "      window_seconds: 20\n" + BASE
    )
    problem = only(problems_of(path), "brew.timeout_seconds")
    assert problem.file == str(path)
    assert problem.line == line_of(path, "timeout_seconds: 45")
    assert "brew.timeout_seconds (45 s) is longer than" in problem.message
    assert "rate_limits.fire.window_seconds (20 s)" in problem.message
    assert "run_read" not in problem.message  # 60 s: long enough
    assert problem.fix == (
        "set brew.timeout_seconds to at most 20, or make "
        "brew.rate_limits.fire.window_seconds at least 45"
    )


def test_a_short_window_under_the_default_timeout_is_placed_at_the_window(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        "brew:\n  rate_limits:\n    run_read:\n      limit: 10\n      window_seconds: 10\n"
        "    trigger_read:\n      limit: 10\n      window_seconds: 5\n" + BASE
    )
    problem = only(problems_of(path), "brew.rate_limits.trigger_read.window_seconds")
    assert problem.line == line_of(path, "window_seconds: 5")
    assert "brew.timeout_seconds (30 s)" in problem.message
    assert "run_read.window_seconds (10 s)" in problem.message
    assert "trigger_read.window_seconds (5 s)" in problem.message
    assert problem.fix.startswith("set brew.timeout_seconds to at most 5, or make ")
    assert problem.fix.endswith("(and the others named)")


def test_a_brew_timeout_from_the_environment_names_the_variable(
    write_config: WriteConfig,
) -> None:
    path = write_config(BASE)
    problems = problems_of(path, {"BREW_BRIDGE_BREW__TIMEOUT_SECONDS": "61"})
    problem = only(problems, "BREW_BRIDGE_BREW__TIMEOUT_SECONDS")
    assert (problem.file, problem.line) == ("environment", None)
    assert "rate_limits.fire.window_seconds (60 s)" in problem.message


def test_a_brew_timeout_equal_to_the_window_loads(write_config: WriteConfig) -> None:
    path = write_config(
        "brew:\n  timeout_seconds: 1\n  rate_limits:\n    fire:\n      limit: 200\n"
        "      window_seconds: 1\n" + BASE
    )
    config = load_config(path, env={})
    assert config.brew.timeout_seconds == config.brew.rate_limits.fire.window_seconds == 1


def test_a_config_built_in_code_is_held_to_the_timeout_check() -> None:
    data = yaml.safe_load(BASE)
    data["brew"] = {"timeout_seconds": 90}
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data, env={})
    (problem,) = info.value.problems
    assert (problem.file, problem.key_path) == ("<mapping>", "brew.timeout_seconds")
    with pytest.raises(ValueError, match=r"brew\.timeout_seconds \(90 s\)"):
        BridgeConfig.model_validate(data)


# --------------------------------------------------------------------------- shared limiter


def test_the_shared_limiter_is_off_by_default_and_its_url_is_a_secret(
    write_config: WriteConfig,
) -> None:
    assert load_config(write_config(BASE), env={}).brew.rate_limits.shared is None
    path = write_config(
        "brew:\n  rate_limits:\n    shared:\n      redis_url: redis://u:s3cret@redis:6379/0\n"
        + BASE
    )
    shared = load_config(path, env={}).brew.rate_limits.shared
    assert shared is not None
    assert shared.redis_url.get_secret_value() == "redis://u:s3cret@redis:6379/0"
    assert "s3cret" not in repr(shared)


def test_a_shared_limiter_url_from_the_environment(write_config: WriteConfig) -> None:
    env = {"BREW_BRIDGE_BREW__RATE_LIMITS__SHARED__REDIS_URL": "rediss://:pw@cache:6380/1"}
    config = load_config(write_config(BASE), env=env)
    assert config.brew.rate_limits.shared is not None
    assert config.brew.rate_limits.shared.redis_url.get_secret_value().startswith("rediss://")


def test_a_shared_limiter_url_that_is_not_redis_names_the_key_and_the_fix(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        "brew:\n  rate_limits:\n    shared:\n      redis_url: http://u:s3cret@cache:6379\n" + BASE
    )
    problem = only(problems_of(path), "brew.rate_limits.shared.redis_url")
    assert problem.file == str(path)
    assert problem.line == line_of(path, "redis_url:")
    assert "needs a Redis URL, not 'http'" in problem.message
    assert "write redis://HOST:6379/0" in problem.message
    assert "s3cret" not in problem.message + problem.fix
