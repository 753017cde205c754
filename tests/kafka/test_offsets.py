"""The commit-position rule, without a broker: never past a record that is not durable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from brew_bridge.sources.kafka.offsets import OffsetTracker

P = ("orders", 0)
Q = ("orders", 1)


def test_nothing_durable_means_nothing_to_commit() -> None:
    t = OffsetTracker()
    t.received(P, [0, 1, 2])
    assert t.position(P) is None
    assert t.to_commit() == {}


def test_a_stored_batch_commits_one_past_its_last_offset() -> None:
    t = OffsetTracker()
    t.received(P, [5, 6, 7])
    t.durable(P, [5, 6, 7])
    assert t.to_commit() == {P: 8}
    t.committed({P: 8})
    assert t.to_commit() == {}
    assert t.committed_position(P) == 8


def test_a_hole_holds_the_commit_back() -> None:
    t = OffsetTracker()
    t.received(P, [0, 1, 2, 3])
    t.durable(P, [0, 2, 3])
    assert t.position(P) == 1
    t.durable(P, [1])
    assert t.position(P) == 4


def test_gaps_in_offsets_are_fine() -> None:
    """Compaction and transaction markers leave offsets that are never received."""
    t = OffsetTracker()
    t.received(P, [0, 4, 9])
    t.durable(P, [0, 4, 9])
    assert t.position(P) == 10


def test_partitions_are_independent_and_forgotten_on_revoke() -> None:
    t = OffsetTracker()
    t.received(P, [0])
    t.received(Q, [0, 1])
    t.durable(P, [0])
    t.durable(Q, [0])
    assert t.to_commit() == {P: 1, Q: 1}
    t.forget([Q])
    assert t.to_commit() == {P: 1}
    assert t.partitions() == frozenset({P})


def test_a_replay_below_the_durable_mark_does_not_hold_back() -> None:
    t = OffsetTracker()
    t.received(P, [0, 1])
    t.durable(P, [0, 1])
    t.received(P, [1, 2])  # 1 again after a seek, and a new one
    assert t.position(P) == 2
    t.durable(P, [1, 2])
    assert t.position(P) == 3


def test_commits_never_go_backwards() -> None:
    t = OffsetTracker()
    t.received(P, [0, 1])
    t.durable(P, [0, 1])
    t.committed({P: 2})
    t.committed({P: 1})
    assert t.committed_position(P) == 2


@given(
    st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=60, unique=True),
    st.data(),
)
def test_the_position_never_passes_a_record_that_is_not_durable(
    offsets: list[int], data: st.DataObject
) -> None:
    offsets.sort()
    durable = data.draw(st.sets(st.sampled_from(offsets)))
    t = OffsetTracker()
    t.received(P, offsets)
    t.durable(P, sorted(durable))
    pos = t.position(P)
    waiting = [o for o in offsets if o not in durable]
    if not durable:
        assert pos is None
        return
    assert pos is not None
    # Every record below the position is durable ...
    assert all(o in durable for o in offsets if o < pos)
    # ... and the position is as far as that allows.
    if waiting:
        assert pos == min(min(waiting), max(durable) + 1)
    else:
        assert pos == max(offsets) + 1
