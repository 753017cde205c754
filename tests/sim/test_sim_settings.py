"""Fault settings and seed files: what they accept, what they refuse, and how they say so."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sim_support import TEST_SEED

from brew_bridge.errors import ConfigError
from brew_bridge.sim.brew.faults import parse_faults
from brew_bridge.sim.brew.ratewindow import Policy
from brew_bridge.sim.brew.seed import brand_for_key, load_seed, parse_seed
from brew_bridge.sim.brew.specs import SpecError

# -- faults --------------------------------------------------------------------------------


def test_no_faults_means_every_request_passes() -> None:
    faults = parse_faults({})
    assert {faults.decide("fire").kind for _ in range(100)} == {"none"}


def test_scripted_steps_come_first_in_order_then_rates() -> None:
    faults = parse_faults(
        {
            "fire": {
                "next": [
                    {"fault": "error", "status": 503, "count": 2, "retryAfter": 3},
                    {"fault": "reset"},
                    {"fault": "rateLimit", "retryAfter": 4},
                ]
            }
        }
    )
    actions = [faults.decide("fire") for _ in range(5)]
    assert [a.kind for a in actions] == ["error", "error", "reset", "rateLimit", "none"]
    assert (actions[0].status, actions[0].retry_after) == (503, 3)
    assert (actions[3].status, actions[3].retry_after) == (429, 4)


def test_scopes_are_independent() -> None:
    faults = parse_faults({"read": {"next": [{"fault": "error"}]}})
    assert faults.decide("fire").kind == "none"
    assert faults.decide("read").kind == "error"
    assert faults.decide("read").kind == "none"


def test_rates_are_deterministic_for_a_seed_and_roughly_right() -> None:
    spec = {"seed": 7, "fire": {"errorRate": 0.2, "resetRate": 0.1, "errorStatuses": [502]}}
    a, b = parse_faults(spec), parse_faults(spec)
    run_a = [a.decide("fire").kind for _ in range(2000)]
    run_b = [b.decide("fire").kind for _ in range(2000)]
    assert run_a == run_b
    counts = Counter(run_a)
    assert 300 < counts["error"] < 500
    assert 120 < counts["reset"] < 280
    other_seed = parse_faults({**spec, "seed": 8})
    assert [other_seed.decide("fire").kind for _ in range(2000)] != run_a


def test_latency_applies_to_every_request_in_scope() -> None:
    faults = parse_faults({"read": {"latencyMs": 25, "next": [{"fault": "error"}]}})
    first, second = faults.decide("read"), faults.decide("read")
    assert (first.kind, first.latency_ms) == ("error", 25)
    assert (second.kind, second.latency_ms) == ("latency", 25)


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"fire": {"errorRate": 1.5}}, "faults.fire.errorRate"),
        ({"fire": {"errorStatuses": [404]}}, "faults.fire.errorStatuses[0]"),
        ({"fire": {"next": [{"fault": "explode"}]}}, "faults.fire.next[0].fault"),
        ({"fire": {"next": [{"fault": "error", "count": 0}]}}, "faults.fire.next[0].count"),
        ({"fire": {"typo": 1}}, "faults.fire.typo"),
        ({"writes": {}}, "faults.writes"),
        ({"fire": {"errorRate": 0.6, "hangRate": 0.6}}, "faults.fire"),
    ],
)
def test_bad_fault_settings_name_the_key(spec: dict[str, object], path: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_faults(spec)
    assert caught.value.path == path
    assert caught.value.fix


# -- seeds ---------------------------------------------------------------------------------


def test_the_test_seed_parses_with_defaults() -> None:
    seed = parse_seed(TEST_SEED)
    assert seed.api_shape is None
    assert seed.allow_any_brew_key is True
    assert seed.idempotency_window_seconds == 86400
    assert seed.triggers is not None
    welcome = seed.triggers["tri_signup"].automations[0]
    assert (welcome.automation_id, welcome.published, welcome.outcome) == (
        "auto_welcome",
        True,
        "completed",
    )
    assert welcome.pending_seconds == 0.1


def test_keys_section_turns_off_any_brew_key_and_fills_brands() -> None:
    seed = parse_seed(
        {"keys": {"brew_a": {"scopes": ["automations"]}, "brew_org": {"brands": ["b1"]}}}
    )
    assert seed.allow_any_brew_key is False
    assert seed.keys is not None
    assert seed.keys["brew_a"].brand_id == brand_for_key("brew_a")
    assert seed.keys["brew_org"].brands == ("b1",)
    assert brand_for_key("brew_a").startswith("brand_")
    assert "brew_a" not in brand_for_key("brew_a")


def test_limits_override_defaults() -> None:
    seed = parse_seed({"limits": {"automation.runs.write": {"limit": 2}}})
    assert seed.limits == {"automation.runs.write": Policy(2, 60.0)}


@pytest.mark.parametrize(
    ("seed", "path"),
    [
        ({"apiShape": "11"}, "seed.apiShape"),
        ({"trigger": {}}, "seed.trigger"),
        ({"limits": {"emails.send": {"limit": 1}}}, "seed.limits.emails.send"),
        (
            {"triggers": {"t": {"payloadSchema": {"type": "object", "fields": []}}}},
            "seed.triggers.t.payloadSchema",
        ),
        (
            {
                "triggers": {
                    "t": {
                        "payloadSchema": TEST_SEED["triggers"]["tri_signup"]["payloadSchema"],
                        "automations": [{"automationId": "a", "outcome": "done"}],
                    }
                }
            },
            "seed.triggers.t.automations[0].outcome",
        ),
        ({"keys": {"brew_x": {"brandId": "b", "brands": ["b"]}}}, "seed.keys.brew_x"),
    ],
)
def test_bad_seeds_name_the_key(seed: dict[str, object], path: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_seed(seed)
    assert caught.value.path == path


def test_integration_triggers_need_no_email() -> None:
    schema = {"type": "object", "fields": [{"key": "userId", "type": "string", "required": True}]}
    seed = parse_seed(
        {"triggers": {"clerk:user.created": {"provider": "clerk", "payloadSchema": schema}}}
    )
    assert seed.triggers is not None
    assert seed.triggers["clerk:user.created"].provider == "clerk"


def test_seed_file_errors_carry_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(
        "triggers:\n"
        "  tri_a:\n"
        "    payloadSchema:\n"
        "      type: object\n"
        "      fields: [{key: email, type: string, required: true}]\n"
        "    automations:\n"
        "      - automationId: auto_a\n"
        "        outcome: finished\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_seed(path)
    problem = caught.value.problems[0]
    assert problem.file == str(path)
    assert problem.key_path == "seed.triggers.tri_a.automations[0].outcome"
    assert problem.line == 8
    assert "completed" in problem.fix
    assert f"{path}:8" in str(caught.value)


def test_seed_file_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text("triggers:\n  - [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_seed(path)
    assert caught.value.problems[0].line is not None
    assert "YAML" in caught.value.problems[0].message


def test_missing_seed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the seed file"):
        load_seed(tmp_path / "absent.yaml")


def test_a_good_seed_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(
        'apiShape: "10"\n'
        "idempotencyWindowSeconds: 5\n"
        "triggers:\n"
        "  tri_a:\n"
        "    payloadSchema: {type: object, fields: [{key: email, type: string, required: true}]}\n"
        "    automations: [{automationId: auto_a, durationMs: 50}]\n"
        "faults:\n"
        "  fire: {next: [{fault: reset}]}\n"
    )
    seed = load_seed(path)
    assert seed.api_shape == "10"
    assert seed.idempotency_window_seconds == 5
    assert seed.faults == {"fire": {"next": [{"fault": "reset"}]}}
