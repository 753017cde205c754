"""The targets: section and routes' target: — what load_config accepts and refuses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from brew_bridge.cli.check import summary
from brew_bridge.config import compiled_routes, load_config
from brew_bridge.config.targets import BoringMarketingConfig, PinkfishConfig
from brew_bridge.errors import ConfigError, ConfigProblem
from brew_bridge.worker import Worker

WriteConfig = Callable[[str], Path]

TARGETS = """
targets:
  research:
    kind: pinkfish
    api_key_env: PF_KEY
  growth:
    kind: boring_marketing
    brand_id: brand_demo
routes:
  - name: lead_research
    topics: [leads]
    target: research
    trigger: trg_lead
    payload:
      email: event.email
  - name: brand_analysis
    topics: [leads]
    target: growth
    trigger: analyze
    payload:
      domain: event.domain
"""


def problems(path: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return info.value.problems


def at(found: list[ConfigProblem], key: str) -> ConfigProblem:
    [hit] = [p for p in found if p.key_path == key]
    return hit


def test_routes_fire_the_targets_they_name(write_config: WriteConfig) -> None:
    config = load_config(write_config(TARGETS), env={"PF_KEY": "pf_secret", "BM_API_KEY": "bm_k"})
    assert config.target_kinds == {
        "brew": "brew",
        "research": "pinkfish",
        "growth": "boring_marketing",
    }
    research, growth = config.targets["research"], config.targets["growth"]
    assert isinstance(research, PinkfishConfig)
    assert isinstance(growth, BoringMarketingConfig)
    assert research.api_key is not None
    assert research.api_key.get_secret_value() == "pf_secret"
    assert growth.api_key is not None
    assert growth.api_key.get_secret_value() == "bm_k"
    routes = compiled_routes(config)
    assert {(r.name, r.target, r.action) for r in routes.routes} == {
        ("lead_research", "research", "trg_lead"),
        ("brand_analysis", "growth", "analyze"),
    }
    text = "\n".join(summary(config, routes, "bridge.yaml"))
    assert "lead_research" in text
    assert "-> research:trg_lead" in text
    assert "target research (pinkfish): http://127.0.0.1:8788; API key: set" in text
    assert "pf_secret" not in text


def test_a_missing_target_key_is_named_by_check_and_refused_by_the_worker(
    write_config: WriteConfig,
) -> None:
    config = load_config(write_config(TARGETS), env={})
    routes = compiled_routes(config)
    text = "\n".join(summary(config, routes, "bridge.yaml"))
    assert "run needs PF_KEY or targets.research.api_key_file" in text
    with pytest.raises(ConfigError) as info:
        Worker(config, consume=False, env={"BM_API_KEY": "bm_k"})
    [problem] = info.value.problems
    assert problem.key_path == "PF_KEY"
    assert "targets.research" in problem.message


def test_no_brew_key_is_needed_when_no_route_fires_brew(write_config: WriteConfig) -> None:
    config = load_config(write_config(TARGETS), env={})
    worker = Worker(config, consume=False, env={"PF_KEY": "pf", "BM_API_KEY": "bm"})
    assert worker.config is config  # built: BREW_API_KEY was not asked for


def test_an_unknown_target_is_named_with_the_closest(write_config: WriteConfig) -> None:
    path = write_config(TARGETS.replace("target: research", "target: reserch"))
    problem = at(problems(path), "routes[0].target")
    assert "'reserch' is not configured" in problem.message
    assert "'research'" in problem.fix


def test_a_boring_marketing_trigger_must_be_a_pipeline(write_config: WriteConfig) -> None:
    path = write_config(TARGETS.replace("trigger: analyze", "trigger: analyse"))
    problem = at(problems(path), "routes[1].trigger")
    assert "not a Boring Marketing pipeline endpoint" in problem.message
    assert "'analyze'" in problem.fix


def test_a_pinkfish_route_needs_no_declared_trigger(write_config: WriteConfig) -> None:
    # Brew routes need triggers: with a payload_schema; Pinkfish publishes none.
    config = load_config(write_config(TARGETS), env={})
    assert config.triggers == {}


def test_on_unknown_outcome_applies_to_pinkfish_only(write_config: WriteConfig) -> None:
    text = TARGETS.replace(
        "    target: growth\n", "    target: growth\n    on_unknown_outcome: fire_again\n"
    )
    problem = at(problems(write_config(text)), "routes[1].on_unknown_outcome")
    assert "applies to Pinkfish routes" in problem.message
    research = TARGETS.replace(
        "    target: research\n", "    target: research\n    on_unknown_outcome: fire_again\n"
    )
    config = load_config(write_config(research), env={})
    assert config.routes[0].on_unknown_outcome == "fire_again"


@pytest.mark.parametrize(
    ("name", "message"),
    [("brew", "the brew: section's"), ("bad name!", "not usable in metric labels")],
)
def test_target_names_are_checked(write_config: WriteConfig, name: str, message: str) -> None:
    text = TARGETS.replace("  research:\n", f"  {name!r}:\n").replace(
        "target: research", f"target: {name!r}"
    )
    found = problems(write_config(text))
    assert any(message in p.message and p.key_path.startswith("targets") for p in found)


def test_a_key_in_the_yaml_is_refused_and_never_echoed(write_config: WriteConfig) -> None:
    text = TARGETS.replace("    api_key_env: PF_KEY\n", "    api_key: pf_in_yaml\n")
    found = problems(write_config(text))
    problem = at(found, "targets.research.api_key")
    assert "never read from the config file" in problem.message
    assert "pf_in_yaml" not in "\n".join(str(p) for p in found)


def test_key_file_problems_name_the_target_key(write_config: WriteConfig, tmp_path: Path) -> None:
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    text = TARGETS.replace("    api_key_env: PF_KEY\n", f"    api_key_file: {empty}\n")
    problem = at(problems(write_config(text)), "targets.research.api_key_file")
    assert "is empty" in problem.message
    missing = TARGETS.replace(
        "    api_key_env: PF_KEY\n", f"    api_key_file: {tmp_path / 'nope.key'}\n"
    )
    problem = at(problems(write_config(missing)), "targets.research.api_key_file")
    assert "cannot read the API key file" in problem.message
    (tmp_path / "pf.key").write_text("pf_from_file\n")
    good = TARGETS.replace(
        "    api_key_env: PF_KEY\n", f"    api_key_file: {tmp_path / 'pf.key'}\n"
    )
    key = load_config(write_config(good), env={}).targets["research"].api_key
    assert key is not None
    assert key.get_secret_value() == "pf_from_file"


def test_an_empty_key_variable_is_a_problem(write_config: WriteConfig) -> None:
    problem = at(problems(write_config(TARGETS), env={"PF_KEY": " "}), "PF_KEY")
    assert "set but empty" in problem.message


def test_a_target_timeout_longer_than_its_window_is_refused(write_config: WriteConfig) -> None:
    text = TARGETS.replace(
        "    api_key_env: PF_KEY\n",
        "    api_key_env: PF_KEY\n    rate_limits:\n      fire: {limit: 5, window_seconds: 10}\n",
    )
    problem = at(problems(write_config(text)), "targets.research.rate_limits.fire.window_seconds")
    assert "targets.research.timeout_seconds (30 s) is longer than" in problem.message


def test_a_boring_marketing_route_needs_a_brand(write_config: WriteConfig) -> None:
    text = TARGETS.replace("    brand_id: brand_demo\n", "")
    problem = at(problems(write_config(text)), "routes[1].payload")
    assert "neither this route's payload nor targets.growth names one" in problem.message
    assert "targets.growth.brand_id" in problem.fix
    mapped = text.replace("      domain: event.domain\n", "      brand_id: event.brand\n")
    config = load_config(write_config(mapped), env={})
    assert config.targets["growth"].kind == "boring_marketing"
