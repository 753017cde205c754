"""The Pinkfish simulator's pure parts: the run clock, the ids and the seed reader."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from brew_bridge.errors import ConfigError
from brew_bridge.sim.brew.specs import SpecError
from brew_bridge.sim.pinkfish.ids import RunIds, automation_id_for, xid
from brew_bridge.sim.pinkfish.runclock import RunPlan, run_status, step_views
from brew_bridge.sim.pinkfish.seed import load_seed, parse_seed, parse_trigger

PLAN = RunPlan(
    created_at=100.0,
    pending_seconds=1.0,
    duration_seconds=7.0,
    outcome="TIMEOUT",
    steps=("Fetch", "Think", "Send"),
)


@pytest.mark.parametrize(
    ("at", "run", "steps"),
    [
        (100.0, "PENDING", ["PENDING", "PENDING", "PENDING"]),
        (101.0, "RUNNING", ["RUNNING", "PENDING", "PENDING"]),
        (103.0, "RUNNING", ["COMPLETE", "RUNNING", "PENDING"]),
        (106.9, "RUNNING", ["COMPLETE", "COMPLETE", "RUNNING"]),
        (107.0, "TIMEOUT", ["COMPLETE", "COMPLETE", "TIMEOUT"]),
        (1e9, "TIMEOUT", ["COMPLETE", "COMPLETE", "TIMEOUT"]),
    ],
)
def test_a_run_and_its_steps_at_any_moment(at: float, run: str, steps: list[str]) -> None:
    assert run_status(PLAN, at) == run
    views = step_views(PLAN, at)
    assert [v.status for v in views] == steps
    assert [(v.index, v.name) for v in views] == [(1, "Fetch"), (2, "Think"), (3, "Send")]
    for view in views:
        assert (view.started_at is None) == (view.status == "PENDING")
        assert (view.ended_at is None) == (view.status in ("PENDING", "RUNNING"))


def test_steps_share_the_running_time_and_end_where_the_run_does() -> None:
    views = step_views(PLAN, 200.0)
    assert [(v.started_at, v.ended_at) for v in views] == [
        (101.0, 103.0),
        (103.0, 105.0),
        (105.0, 107.0),
    ]


def test_run_ids_are_epoch_nanoseconds_and_never_repeat() -> None:
    ids = RunIds()
    first, second = ids.next(1_778_786_207.851669), ids.next(1_778_786_207.851669)
    assert len(first) == 19
    assert first.startswith("177878620785166")
    assert int(second) == int(first) + 1
    assert int(ids.next(0.0)) == int(second) + 1  # a clock stepping back changes nothing


def test_automation_ids_are_stable_xids() -> None:
    assert re.fullmatch(r"[0-9a-v]{20}", automation_id_for("trg_hello"))
    assert automation_id_for("trg_hello") == automation_id_for("trg_hello")
    assert automation_id_for("trg_hello") != automation_id_for("trg_other")
    # The document's automation id is an xid: 12 bytes, the first four a Unix time.
    raw = base64.b32hexdecode("d831ue4rccbc73knbi80".upper() + "====")
    assert xid(raw) == "d831ue4rccbc73knbi80"
    assert int.from_bytes(raw[:4]) == 1_778_786_104  # 2026-05-14T19:15:04Z
    with pytest.raises(ValueError, match="12 bytes"):
        xid(b"short")


def test_a_trigger_spec_defaults_as_the_document_implies() -> None:
    spec = parse_trigger("trg_x", {}, "trigger")
    assert spec.steps == ("Step 1",)
    assert (spec.outcome, spec.automation_version, spec.automation_name) == ("COMPLETE", 1, "trg_x")
    assert spec.pending_seconds == 0.2
    assert parse_trigger("trg_x", {"steps": 2}, "t").steps == ("Step 1", "Step 2")
    assert parse_trigger("trg_x", {"durationMs": 100}, "t").pending_seconds == 0.025


@pytest.mark.parametrize(
    ("seed", "where"),
    [
        ({"nope": 1}, "seed.nope"),
        ({"triggers": {"t": {"outcome": "COMPLETED"}}}, "seed.triggers.t.outcome"),
        ({"triggers": {"t": {"outcomes": []}}}, "seed.triggers.t.outcomes"),
        (
            {"triggers": {"t": {"probabilities": {"NOPE": 1.0}}}},
            "seed.triggers.t.probabilities.NOPE",
        ),
        ({"triggers": {"t": {"steps": ["ok", ""]}}}, "seed.triggers.t.steps[1]"),
        (
            {"triggers": {"t": {"designatedOutput": {}}}},
            "seed.triggers.t.designatedOutput.fileName",
        ),
        ({"keys": {"pf_key_1234567": {"owner": "x"}}}, "seed.keys.pf_key_1234567.owner"),
        ({"faults": {"fire": {"nope": 1}}}, "seed.faults.fire.nope"),
    ],
)
def test_a_bad_seed_names_the_key_path(seed: dict[str, object], where: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_seed(seed)
    assert raised.value.path == where


def test_keys_make_any_other_key_invalid_unless_allowed() -> None:
    assert parse_seed({}).allow_any_key
    assert not parse_seed({"keys": {}}).allow_any_key
    assert parse_seed({"keys": {}, "allowAnyKey": True}).allow_any_key


def test_a_seed_file_problem_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text("triggers:\n  trg_a:\n    steps: 2\n    outcome: DONE\n")
    with pytest.raises(ConfigError) as raised:
        load_seed(path)
    (problem,) = raised.value.problems
    assert (problem.file, problem.key_path, problem.line) == (
        str(path),
        "seed.triggers.trg_a.outcome",
        4,
    )
    path.write_text("triggers: [\n")
    with pytest.raises(ConfigError, match="cannot read the seed"):
        load_seed(path)
