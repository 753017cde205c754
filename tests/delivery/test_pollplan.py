"""Poll planning, without I/O: list vs detail, priorities, deadlines, back-off, holds."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brew_bridge.core.poller import expired
from brew_bridge.targets.brew.pollplan import (
    ALL_TRIGGERS,
    LIST_PAGE_SIZE,
    DetailRead,
    ListSweep,
    PollSettings,
    check_gap,
    due_window,
    plan_poll,
    read_time,
)
from brew_bridge.targets.brew.runlengths import RunLength, RunLengths

NOW = 1_000_000.0
SETTINGS = PollSettings(interval=2.0)
DEADLINE = 3600.0


@dataclass(frozen=True)
class Run:
    run_id: str
    action: str
    fired_at: float
    last_checked_at: float | None = None
    route: str = "welcome"


def is_due(run: Run, now: float) -> bool:
    return due_window(run, SETTINGS)[0] <= now


def fresh(
    n: int, trigger: str = "tri_a", *, start: float = NOW - 10, step: float = 0.1
) -> list[Run]:
    return [Run(f"{trigger}_{i}", trigger, start + i * step) for i in range(n)]


def test_many_fresh_runs_of_one_trigger_are_one_list_sweep() -> None:
    plan = plan_poll(fresh(50), NOW, SETTINGS)
    assert len(plan.reads) == 1
    sweep = plan.reads[0]
    assert isinstance(sweep, ListSweep)
    assert sweep.trigger_event_id == "tri_a"
    assert len(sweep.run_ids) == 50
    assert sweep.estimated_pages == 1
    assert sweep.from_time == pytest.approx(NOW - 10 - SETTINGS.from_slack)
    assert plan.estimated_reads == 1


def test_a_lone_run_is_one_detail_read() -> None:
    plan = plan_poll([Run("run_1", "tri_a", NOW - 5)], NOW, SETTINGS)
    assert plan.reads == (DetailRead("run_1", NOW - 5),)


def test_runs_past_their_deadline_expire_oldest_first_and_are_not_read() -> None:
    runs = [
        Run("old_2", "tri_a", NOW - 3601),
        Run("old_1", "tri_a", NOW - 4000),
        *fresh(3),
    ]
    gone = expired(runs, NOW, DEADLINE)  # type: ignore[arg-type]
    assert [r.run_id for r in gone] == ["old_1", "old_2"]
    plan = plan_poll([r for r in runs if r not in gone], NOW, SETTINGS)
    read_ids = {i for r in plan.reads if isinstance(r, ListSweep) for i in r.run_ids}
    assert read_ids == {"tri_a_0", "tri_a_1", "tri_a_2"}


def test_one_unfiltered_sweep_covers_several_triggers() -> None:
    runs = [*fresh(20, "tri_a"), *fresh(20, "tri_b"), Run("lone", "tri_c", NOW - 3)]
    (sweep,) = plan_poll(runs, NOW, SETTINGS).reads
    assert isinstance(sweep, ListSweep)
    assert sweep.trigger_event_id is ALL_TRIGGERS
    assert len(sweep.run_ids) == 41


def test_reads_come_oldest_run_first_across_triggers() -> None:
    runs = [*fresh(5, "tri_new", start=NOW - 20), *fresh(5, "tri_old", start=NOW - 300)]
    runs.append(Run("lone", "tri_lone", NOW - 100))
    # The brand's unfiltered list is crowded (other traffic): per-trigger reads are cheaper.
    plan = plan_poll(runs, NOW, SETTINGS, rows_per_second={ALL_TRIGGERS: 50.0})
    order = [r.trigger_event_id if isinstance(r, ListSweep) else r.run_id for r in plan.reads]
    assert order == ["tri_old", "lone", "tri_new"]


def test_recently_checked_runs_are_not_read_again() -> None:
    runs = [Run(f"r{i}", "tri_a", NOW - 30, last_checked_at=NOW - 1) for i in range(10)]
    assert plan_poll(runs, NOW, SETTINGS).reads == ()


def test_one_due_run_makes_the_whole_group_swept() -> None:
    runs = [Run(f"r{i}", "tri_a", NOW - 30, last_checked_at=NOW - 1) for i in range(10)]
    runs.append(Run("new", "tri_a", NOW - 2.5))
    (sweep,) = plan_poll(runs, NOW, SETTINGS).reads
    assert isinstance(sweep, ListSweep)
    assert len(sweep.run_ids) == 11  # the others ride along for free


def test_a_cycle_slightly_early_asks_to_read_when_the_run_is_due() -> None:
    # Checked when the last cycle's answer came, a little after that cycle began: the
    # plan does not skip it for a whole interval, it names the moment it is due.
    run = Run("r", "tri_a", NOW - 20, last_checked_at=NOW - SETTINGS.interval + 0.05)
    plan = plan_poll([run], NOW, SETTINGS)
    assert plan.reads == ()
    assert plan.hold_until == pytest.approx(NOW + 0.05)


def test_check_gap_grows_with_age_within_bounds() -> None:
    assert check_gap(1.0, SETTINGS) == SETTINGS.interval
    assert check_gap(100.0, SETTINGS) == pytest.approx(10.0)
    assert check_gap(86_400.0, SETTINGS) == SETTINGS.max_interval


def test_a_long_running_run_is_checked_less_often() -> None:
    old = Run("old", "tri_a", NOW - 3000, last_checked_at=NOW - 30)
    young = Run("young", "tri_a", NOW - 30, last_checked_at=NOW - 3)
    assert not is_due(old, NOW)  # gap is ~300 s at that age
    assert is_due(young, NOW)


def test_an_old_run_behind_a_busy_trigger_is_read_in_detail() -> None:
    # 20 rows a second on this trigger: reaching a run fired an hour ago would take
    # hundreds of pages; the young runs take one.
    runs = [*fresh(30, start=NOW - 5), Run("old", "tri_a", NOW - 1800, last_checked_at=NOW - 200)]
    plan = plan_poll(runs, NOW, SETTINGS, rows_per_second={"tri_a": 20.0})
    sweeps = [r for r in plan.reads if isinstance(r, ListSweep)]
    assert len(sweeps) == 1
    assert "old" not in sweeps[0].run_ids
    assert len(sweeps[0].run_ids) == 30
    assert DetailRead("old", NOW - 1800) in plan.reads
    assert plan.estimated_reads == 2


def test_without_a_known_density_a_sweep_reaches_back_to_the_oldest_run() -> None:
    runs = [*fresh(30, start=NOW - 5), Run("old", "tri_a", NOW - 1800)]
    (sweep,) = plan_poll(runs, NOW, SETTINGS).reads
    assert isinstance(sweep, ListSweep)
    assert "old" in sweep.run_ids


def test_no_sweep_is_planned_past_the_page_bound_even_when_it_would_be_cheapest() -> None:
    # 200 of our runs spread over an hour behind 3 rows a second: reaching them all
    # is ~108 pages (fewer reads than 200 by id, so the old plan swept them all); the
    # bound keeps the sweep to the newest and reads the rest by id over the cycles.
    runs = [Run(f"r{i}", "tri_a", NOW - 3600 + i * 18) for i in range(200)]
    plan = plan_poll(runs, NOW, SETTINGS, rows_per_second={"tri_a": 3.0})
    sweeps = [r for r in plan.reads if isinstance(r, ListSweep)]
    assert len(sweeps) == 1
    assert sweeps[0].estimated_pages <= SETTINGS.max_sweep_pages
    assert "r0" not in sweeps[0].run_ids  # the oldest is read by id
    assert DetailRead("r0", NOW - 3600) in plan.reads


def test_stragglers_get_detail_reads_and_leave_the_sweep() -> None:
    runs = fresh(10)
    plan = plan_poll(runs, NOW, SETTINGS, stragglers={"tri_a_3"})
    sweeps = [r for r in plan.reads if isinstance(r, ListSweep)]
    assert len(sweeps) == 1
    assert "tri_a_3" not in sweeps[0].run_ids
    assert DetailRead("tri_a_3", runs[3].fired_at) in plan.reads


def test_sweep_pages_are_estimated_from_density() -> None:
    runs = fresh(250, start=NOW - 25)  # 10 of ours per second, no other traffic known
    (sweep,) = plan_poll(runs, NOW, SETTINGS).reads
    assert isinstance(sweep, ListSweep)
    assert sweep.estimated_pages == 3


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="list_min_runs"):
        PollSettings(interval=1, list_min_runs=1)
    with pytest.raises(ValueError, match="positive"):
        PollSettings(interval=0)


runs_strategy = st.lists(
    st.builds(
        Run,
        run_id=st.uuids().map(str),
        action=st.sampled_from(["tri_a", "tri_b", "tri_c"]),
        fired_at=st.floats(NOW - 7200, NOW),
        last_checked_at=st.one_of(st.none(), st.floats(NOW - 600, NOW)),
    ),
    max_size=60,
    unique_by=lambda r: r.run_id,
)


@given(
    runs_strategy,
    st.dictionaries(st.sampled_from(["tri_a", "tri_b", ALL_TRIGGERS]), st.floats(0.01, 100)),
)
def test_every_due_run_is_expired_or_read_exactly_once(
    runs: list[Run], rates: dict[str | None, float]
) -> None:
    gone = expired(runs, NOW, DEADLINE)  # type: ignore[arg-type]
    plan = plan_poll([r for r in runs if r not in gone], NOW, SETTINGS, rows_per_second=rates)
    covered: list[str] = [r.run_id for r in gone]
    for read in plan.reads:
        covered.extend(read.run_ids if isinstance(read, ListSweep) else [read.run_id])
    assert len(covered) == len(set(covered))  # nothing read twice in one cycle
    if plan.hold_until is not None:  # held: nothing due has waited out the hold yet
        assert plan.reads == ()
        assert plan.hold_until > NOW
        hold = SETTINGS.hold_intervals * SETTINGS.interval
        assert all(NOW - due_window(r, SETTINGS)[0] < hold for r in runs if r not in gone)
        return
    for run in runs:
        if NOW - run.fired_at >= DEADLINE or is_due(run, NOW):
            assert run.run_id in covered
    # A sweep is only worth it for several runs; one run is one detail read.
    for read in plan.reads:
        if isinstance(read, ListSweep):
            assert len(read.run_ids) >= SETTINGS.list_min_runs


def test_a_route_may_set_its_own_deadline() -> None:
    runs = [Run("quick_1", "tri_a", NOW - 120, route="quick"), Run("slow_1", "tri_a", NOW - 120)]
    gone = expired(runs, NOW, DEADLINE, per_route={"quick": 60.0})  # type: ignore[arg-type]
    assert [r.run_id for r in gone] == ["quick_1"]


def test_old_runs_are_read_less_often() -> None:
    assert check_gap(10.0, SETTINGS) == SETTINGS.interval  # fresh: every poll
    assert check_gap(600.0, SETTINGS) == 60.0  # 10 minutes old: every minute
    assert check_gap(5 * 3600.0, SETTINGS) == 1800.0  # from 5 hours: every half hour
    assert check_gap(3 * 86_400.0, SETTINGS) == 1800.0


# -- run lengths and holds ----------------------------------------------------------------

BURST = {"tri_1s": 1.0, "tri_2s": 2.0, "tri_3s": 3.0}


def burst(at: float, n: int = 60, spread: float = 0.5) -> list[Run]:
    """``n`` fires over ``spread`` seconds, round-robin over the 1, 2 and 3 s triggers."""
    triggers = list(BURST)
    return [Run(f"b{at}_{i}", triggers[i % 3], at + spread * i / n) for i in range(n)]


LENGTHS = {t: RunLength(s, s + 0.02) for t, s in BURST.items()}


def test_a_run_is_not_read_before_its_trigger_shortest_run_can_have_ended() -> None:
    runs = fresh(10, start=NOW - 3, step=0.01)
    plan = plan_poll(runs, NOW, SETTINGS, lengths={"tri_a": RunLength(5.0, 5.0)})
    assert plan.reads == ()
    assert plan.hold_until == pytest.approx(NOW - 3 + 0.09 + 5.0)


def test_a_known_short_run_is_read_as_soon_as_it_can_have_ended() -> None:
    # Unknown, a run waits one interval; a trigger whose runs take 0.5 s is read then.
    runs = fresh(5, start=NOW - 0.6, step=0.01)
    (sweep,) = plan_poll(runs, NOW, SETTINGS, lengths={"tri_a": RunLength(0.5, 0.5)}).reads
    assert isinstance(sweep, ListSweep)
    assert plan_poll(runs, NOW, SETTINGS).hold_until == pytest.approx(NOW - 0.6 + 2.04)


def test_a_burst_of_runs_is_read_once_when_its_longest_can_have_ended() -> None:
    runs = burst(NOW)
    # Its 1 s runs can have ended, but more runs end every moment: hold.
    early = plan_poll(runs, NOW + 1.2, SETTINGS, lengths=LENGTHS)
    assert early.reads == ()
    last_3s = max(r.fired_at for r in runs if r.action == "tri_3s")
    assert early.hold_until == pytest.approx(last_3s + 3.02)
    # Then one unfiltered sweep takes the whole burst.
    assert early.hold_until is not None
    (sweep,) = plan_poll(runs, early.hold_until, SETTINGS, lengths=LENGTHS).reads
    assert isinstance(sweep, ListSweep)
    assert sweep.trigger_event_id is ALL_TRIGGERS
    assert len(sweep.run_ids) == 60


def test_a_hold_ends_hold_intervals_after_the_first_run_was_due() -> None:
    # A steady stream (10 fires a second) never pauses: reads come every hold.
    runs = [Run(f"s{i}", "tri_a", NOW + i * 0.1) for i in range(100)]
    lengths = {"tri_a": RunLength(1.0, 1.0)}
    plan = plan_poll(runs, NOW + 1.5, SETTINGS, lengths=lengths)
    assert plan.hold_until == pytest.approx(NOW + 1.0 + SETTINGS.hold_intervals * 2.0)


def test_a_run_due_long_after_the_others_does_not_hold_them() -> None:
    runs = [Run("a", "tri_a", NOW - 2.0), Run("b", "tri_a", NOW - 2.0 + 0.01)]
    runs.append(Run("late", "tri_b", NOW - 2.0))
    lengths = {"tri_a": RunLength(2.0, 2.0), "tri_b": RunLength(4.0, 4.0)}
    # "late" can end 2 s after the others: more than the lull, so they are read now.
    assert read_time(
        [due_window(r, SETTINGS, lengths[r.action]) for r in runs], SETTINGS
    ) == pytest.approx(NOW + 0.01)


def test_a_hold_stops_at_a_page_of_due_runs() -> None:
    # Waiting for more than a page's worth would only need another page.
    windows = [(NOW + i * 0.001, NOW + i * 0.001) for i in range(LIST_PAGE_SIZE + 50)]
    assert read_time(windows, SETTINGS) == pytest.approx(NOW + (LIST_PAGE_SIZE - 1) * 0.001)


def test_a_run_checked_after_its_length_waits_its_back_off() -> None:
    run = Run("r", "tri_a", NOW - 10, last_checked_at=NOW - 1)
    assert due_window(run, SETTINGS, RunLength(3.0, 4.0)) == (NOW + 1, NOW + 1)
    # Checked before its trigger's runs can have ended: due when they can.
    early = Run("e", "tri_a", NOW - 1, last_checked_at=NOW - 0.5)
    assert due_window(early, SETTINGS, RunLength(3.0, 4.0)) == (NOW + 2, NOW + 3)


def test_run_lengths_are_the_recent_fire_to_end_seconds_of_each_trigger() -> None:
    lengths = RunLengths()
    assert "tri_a" not in lengths
    lengths.saw("tri_a", NOW, NOW + 2.0)
    lengths.saw("tri_a", NOW, NOW + 3.0)
    lengths.saw("tri_b", NOW, NOW - 1.0)  # stamped after Brew's end: no time at all
    assert lengths["tri_a"] == RunLength(2.0, 3.0)
    assert lengths["tri_b"] == RunLength(0.0, 0.0)
    for _ in range(100):  # the flow got faster: the old lengths are forgotten
        lengths.saw("tri_a", NOW, NOW + 1.0)
    assert lengths["tri_a"] == RunLength(1.0, 1.0)
    assert set(lengths) == {"tri_a", "tri_b"}


def test_settings_refuse_a_negative_hold() -> None:
    with pytest.raises(ValueError, match="hold_intervals"):
        PollSettings(interval=2, hold_intervals=-1)
