"""`check --online`: the pre-flight against the real simulators over HTTP, both API shapes.

The command runs in-process through ``check.register`` (the code path ``brew-bridge``
dispatches to). Every simulator test also checks that nothing was fired: the request log
holds no POST.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from brew_bridge.cli import check
from brew_bridge.cli.preflight import (
    EXIT_CANNOT_CHECK,
    EXIT_OK,
    EXIT_WOULD_FAIL,
    Problem,
    exit_code,
    readiness_problems,
    sample_problems,
    schema_diff,
)
from brew_bridge.testing import running_simulator
from brew_bridge.testing.boring_marketing import running_boring_marketing_simulator
from brew_bridge.testing.simulator import SimulatorHandle

SHAPES = ["9.3", "10"]

WELCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "fields": [
        {"key": "email", "type": "string", "required": True},
        {"key": "firstName", "type": "string", "required": False},
    ],
}
RECEIPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "fields": [
        {"key": "email", "type": "string", "required": True},
        {"key": "amount", "type": "string", "required": True},
    ],
}
PUBLISHED = [{"automationId": "auto_1", "published": True}]


def _trigger(schema: dict[str, Any], *, published: bool = True) -> dict[str, Any]:
    return {
        "payloadSchema": schema,
        "automations": [{"automationId": "auto_1", "published": published}],
    }


def _seed(**triggers: dict[str, Any]) -> dict[str, Any]:
    return {
        "triggers": {
            "tri_welcome": _trigger(WELCOME_SCHEMA),
            "tri_receipt": _trigger(RECEIPT_SCHEMA),
            **triggers,
        }
    }


def _config(tmp_path: Path, base_url: str, **extra: Any) -> Path:
    config: dict[str, Any] = {
        "brew": {"base_url": base_url},
        "triggers": {
            "tri_welcome": {"payload_schema": WELCOME_SCHEMA},
            "tri_receipt": {"payload_schema": RECEIPT_SCHEMA},
        },
        "routes": [
            {
                "name": "welcome",
                "topics": ["signups"],
                "match": {"type": "user.created"},
                "trigger": "tri_welcome",
                "payload": {"email": "event.data.email", "firstName": "event.data.first_name"},
            },
            {
                "name": "receipt",
                "topics": ["payments"],
                "match": {"type": "invoice.paid"},
                "trigger": "tri_receipt",
                "payload": {"email": "event.data.email", "amount": "event.data.amount"},
            },
        ],
    }
    config.update(extra)
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _sample(tmp_path: Path, first_name: Any = "Ada") -> Path:
    event = {
        "type": "user.created",
        "id": "evt_1",
        "data": {"email": "ada@example.com", "first_name": first_name},
    }
    path = tmp_path / "user_created.json"
    path.write_text(json.dumps(event))
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.upper().startswith(("BREW_BRIDGE_", "BREW_API_KEY", "BM_API_KEY")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BREW_API_KEY", "brew_test_key")


@pytest.fixture(params=SHAPES)
def shape(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="brew-bridge")
    check.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _online(config: Path, capsys: pytest.CaptureFixture[str], *samples: Path) -> tuple[int, str]:
    argv = ["check", "--online", "--config", str(config)]
    for sample in samples:
        argv += ["--sample", str(sample)]
    code, out, _ = _run(argv, capsys)
    return code, out


@pytest.fixture
def sim(shape: str) -> Iterator[SimulatorHandle]:
    with running_simulator(_seed(), api_shape=shape) as handle:
        yield handle
        # Whatever the test did: a pre-flight only reads.
        assert handle.requests(), "the check sent nothing at all"
        assert [r for r in handle.requests() if r["method"] != "GET"] == []


def _lines(out: str, needle: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if needle in line]


# -- against the simulator, both shapes ---------------------------------------------------


def test_good_config_passes(
    sim: SimulatorHandle, shape: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _online(_config(tmp_path, sim.base_url), capsys, _sample(tmp_path))
    assert code == EXIT_OK, out
    welcome = _lines(out, "trigger tri_welcome (routes welcome): ready")
    assert welcome == [
        f"trigger tri_welcome (routes welcome): ready (API {shape}, 1 mapped samples fit)"
    ]
    assert _lines(out, "trigger tri_receipt (routes receipt): ready")
    assert "fix:" not in out
    paths = {r["path"] for r in sim.requests()}
    ready = "fire" if shape == "9.3" else "readiness"
    assert f"/api/v1/automations/triggers/tri_welcome/{ready}" in paths


def test_trigger_with_nothing_published_fails(
    sim: SimulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.put_trigger("tri_receipt", _trigger(RECEIPT_SCHEMA, published=False))
    code, out = _online(_config(tmp_path, sim.base_url), capsys)
    assert code == EXIT_WOULD_FAIL
    [line] = _lines(out, "trigger tri_receipt (")
    assert line.startswith("trigger tri_receipt (routes receipt): no published automation")
    assert "fix: publish an automation attached to tri_receipt in Brew" in line
    assert _lines(out, "trigger tri_welcome (routes welcome): ready")


def test_schema_differing_from_the_live_one_names_the_field(
    sim: SimulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = {
        "type": "object",
        "fields": [
            *RECEIPT_SCHEMA["fields"],
            {"key": "currency", "type": "string", "required": True},
        ],
    }
    sim.put_trigger("tri_receipt", _trigger(live))
    code, out = _online(_config(tmp_path, sim.base_url), capsys)
    assert code == EXIT_WOULD_FAIL
    [line] = _lines(out, "trigger tri_receipt (")
    assert line == (
        "trigger tri_receipt (routes receipt): field currency (required) is in the live "
        "payloadSchema, not in the config (fix: copy the live payloadSchema of tri_receipt "
        "into triggers.tri_receipt.payload_schema)"
    )


def test_mapped_sample_the_live_schema_refuses_names_route_and_field(
    sim: SimulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = {
        "type": "object",
        "fields": [
            {"key": "email", "type": "string", "required": True},
            {"key": "firstName", "type": "int", "required": False},
        ],
    }
    sim.put_trigger("tri_welcome", _trigger(live))
    sample = _sample(tmp_path)
    code, out = _online(_config(tmp_path, sim.base_url), capsys, sample)
    assert code == EXIT_WOULD_FAIL
    [refused] = _lines(out, "Brew would refuse")
    assert refused.startswith(
        f"route welcome -> tri_welcome (sample {sample}): Brew would refuse the payload: "
        "invalid_type firstName"
    )
    assert _lines(out, "field firstName is string in the config, int live")


def test_refused_key_is_one_clear_line(
    shape: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = {**_seed(), "keys": {"brew_good_key": {"scopes": ["all"]}}}
    with running_simulator(seed, api_shape=shape) as sim:
        code, out, err = _run(
            ["check", "--online", "--config", str(_config(tmp_path, sim.base_url))], capsys
        )
        # 10.x with brew.api_shape auto: the 9.3 ready check is refused first (405).
        expected = [401] if shape == "9.3" else [405, 401]
        assert [r["status"] for r in sim.requests()] == expected
        assert [r for r in sim.requests() if r["method"] != "GET"] == []
    assert code == EXIT_CANNOT_CHECK
    [line] = _lines(out, "target brew")
    assert "the API key was refused (401 INVALID_API_KEY" in line
    assert "(fix: put a valid Brew API key (scope automations) in BREW_API_KEY" in line
    assert "Traceback" not in out + err
    assert "ready" not in out


def test_unreachable_brew_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        ["check", "--online", "--config", str(_config(tmp_path, "http://127.0.0.1:1/api"))], capsys
    )
    assert code == EXIT_CANNOT_CHECK
    [line] = _lines(out, "target brew")
    assert line.startswith("target brew: cannot reach http://127.0.0.1:1/api")
    assert "fix: check brew.base_url" in line
    assert "Traceback" not in err


def test_without_online_nothing_is_read(
    sim: SimulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, sim.base_url)
    code, out, _ = _run(["check", "--config", str(config)], capsys)
    assert code == EXIT_OK
    assert sim.requests() == []
    assert "online check" not in out
    _online(config, capsys)  # the fixture wants a request


def test_other_targets(
    sim: SimulatorHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BM_API_KEY", "bm_test_key")
    with running_boring_marketing_simulator({"brands": {"brand_demo": {}}}) as bm:
        targets = {
            "research": {"kind": "pinkfish", "base_url": "http://127.0.0.1:1"},
            "growth": {
                "kind": "boring_marketing",
                "base_url": bm.base_url,
                "api_key_env": "BM_API_KEY",
                "brand_id": "brand_demo",
            },
        }
        base = yaml.safe_load(_config(tmp_path, sim.base_url).read_text())
        routes = [
            *base["routes"],
            {"name": "research", "topics": ["leads"], "target": "research", "trigger": "trg_1",
             "payload": {"email": "event.email"}},
            {"name": "analysis", "topics": ["leads"], "target": "growth", "trigger": "analyze",
             "payload": {"brand_id": "event.brand"}},
        ]  # fmt: skip
        config = _config(tmp_path, sim.base_url, targets=targets, routes=routes)
        code, out = _online(config, capsys)
        assert code == EXIT_OK, out
        assert _lines(out, "target research (pinkfish): not pre-flightable: no read endpoint")
        assert _lines(out, "target growth (boring_marketing): key and brand brand_demo accepted")
        assert [(r["method"], r["path"]) for r in bm.requests()] == [
            ("GET", "/brands/brand_demo/runs")
        ]
        # An unknown brand fails the route.
        targets["growth"]["brand_id"] = "brand_gone"
        bm.clear_requests()
        code, out = _online(_config(tmp_path, sim.base_url, targets=targets, routes=routes), capsys)
        assert code != EXIT_OK
        assert _lines(out, "brand_gone")


def test_example_config_with_the_samples_manifest(
    shape: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).resolve().parents[2]
    with (
        running_simulator(repo / "config" / "sim-seed.yaml", api_shape=shape) as sim,
        running_boring_marketing_simulator(
            repo / "config" / "sim-seed-boring-marketing.yaml"
        ) as bm,
    ):
        monkeypatch.setenv("BM_API_KEY", "bm_test_key")
        monkeypatch.setenv("BREW_BRIDGE_BREW__BASE_URL", sim.base_url)
        monkeypatch.setenv("BREW_BRIDGE_TARGETS__GROWTH__BASE_URL", bm.base_url)
        argv = ["check", "--online", "--config", str(repo / "config" / "example.yaml")]
        argv += ["--samples", str(repo / "config" / "samples" / "manifest.yaml")]
        code, out, _ = _run(argv, capsys)
        assert [r for r in sim.requests() + bm.requests() if r["method"] != "GET"] == []
    assert code == EXIT_OK, out
    ready = _lines(out, ": ready (API ")
    assert len(ready) == 6  # the example's six Brew triggers
    assert _lines(out, "trigger tri_welcome (routes welcome, marketplace_welcome): ready")
    assert "5 mapped samples fit" in _lines(out, "trigger tri_welcome")[0]


# -- pure -----------------------------------------------------------------------------------


def _schema(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "fields": list(fields)}


EMAIL = {"key": "email", "type": "string", "required": True}


def test_schema_diff_identical_is_empty() -> None:
    assert schema_diff(WELCOME_SCHEMA, WELCOME_SCHEMA) == []


def test_schema_diff_each_kind() -> None:
    config = _schema(
        EMAIL,
        {"key": "plan", "type": "string", "required": False},
        {"key": "amount", "type": "string", "required": True},
        {"key": "old", "type": "string", "required": False},
    )
    live = _schema(
        EMAIL,
        {"key": "plan", "type": "string", "required": True},
        {"key": "amount", "type": "int", "required": True},
        {"key": "currency", "type": "string", "required": True},
        {"key": "note", "type": "string", "required": False},
    )
    diffs = {(d.field, d.kind, d.fails) for d in schema_diff(config, live)}
    assert diffs == {
        ("plan", "required", True),
        ("amount", "type", True),
        ("currency", "missing", True),
        ("note", "missing", False),
        ("old", "extra", False),
    }


def test_schema_diff_fallback_and_loosened_required_do_not_fail() -> None:
    config = _schema({**EMAIL}, {"key": "plan", "type": "string", "required": True})
    live = _schema(
        EMAIL,
        {"key": "plan", "type": "string", "required": False},
        {"key": "tier", "type": "string", "required": True, "fallbackValue": "free"},
    )
    assert [(d.field, d.kind, d.fails) for d in schema_diff(config, live)] == [
        ("plan", "required", False),
        ("tier", "missing", False),
    ]


def test_schema_diff_nested_fields() -> None:
    def items(*children: dict[str, Any]) -> dict[str, Any]:
        return {"key": "lineItems", "type": "array", "required": True, "children": list(children)}

    def totals(*children: dict[str, Any]) -> dict[str, Any]:
        return {"key": "totals", "type": "object", "required": True, "children": list(children)}

    title = {"key": "title", "type": "string", "required": True}
    config = _schema(
        EMAIL, items(title), totals({"key": "total", "type": "string", "required": True})
    )
    live = _schema(
        EMAIL,
        items(title, {"key": "quantity", "type": "int", "required": True}),
        totals({"key": "total", "type": "float", "required": True}),
    )
    diffs = [(d.field, d.kind) for d in schema_diff(config, live)]
    assert diffs == [("lineItems[].quantity", "missing"), ("totals.total", "type")]
    [message] = [d.message() for d in schema_diff(config, live) if d.kind == "type"]
    assert message == "field totals.total is string in the config, float live"


def test_readiness_problems_both_shapes() -> None:
    ready_93 = {
        "success": True,
        "status": "ready",
        "ready": True,
        "details": {"counts": {"automations": 1}},
    }
    assert readiness_problems("tri_a", ready_93, "a") == []
    none_93 = {
        "success": True,
        "status": "ready",
        "ready": False,
        "details": {"counts": {"automations": 0}},
    }
    [problem] = readiness_problems("tri_a", none_93, "a")
    assert problem.subject == "trigger tri_a (routes a)"
    assert problem.message == "no published automation"
    blocked_10 = {
        "ready": False,
        "blockers": [{"code": "NO_PUBLISHED_AUTOMATION", "message": "nothing published"}],
        "counts": {"automations": 0, "skipped": 0},
    }
    [problem] = readiness_problems("tri_a", blocked_10, "a")
    assert problem.message == "no published automation (NO_PUBLISHED_AUTOMATION)"
    assert (
        readiness_problems(
            "tri_a", {"ready": True, "blockers": [], "counts": {"automations": 2}}, "a"
        )
        == []
    )


def test_sample_problems_use_the_given_schema() -> None:
    live = _schema(EMAIL, {"key": "amount", "type": "string", "required": True})
    assert (
        sample_problems("r", "tri_a", "s.json", {"email": "a@example.com", "amount": "1"}, live)
        == []
    )
    [problem] = sample_problems("r", "tri_a", "s.json", {"email": "a@example.com"}, live)
    assert problem.subject == "route r -> tri_a (sample s.json)"
    assert "missing_required amount" in problem.message


def test_exit_code() -> None:
    assert exit_code([]) == EXIT_OK
    assert exit_code([Problem("s", "m", "f", "warn")]) == EXIT_OK
    assert exit_code([Problem("s", "m", "f", "warn"), Problem("s", "m", "f")]) == EXIT_WOULD_FAIL
    assert (
        exit_code([Problem("s", "m", "f"), Problem("s", "m", "f", "cannot_check")])
        == EXIT_CANNOT_CHECK
    )
