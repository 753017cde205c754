"""running_broker(): Tansu on a free port, exact end offsets, restart on the same port."""

from __future__ import annotations

from brew_bridge.testing.kafka import example_events, running_broker


def test_produce_end_offsets_and_restart() -> None:
    with running_broker() as broker:
        host, port = broker.bootstrap_servers.split(":")
        assert host == "127.0.0.1"
        broker.create_topic("t", partitions=2)
        # Several records per produce request: Tansu's own high watermark would say 1.
        broker.produce("t", [b"a", b"b", b"c"], partition=0)
        broker.produce("t", [b"d"], keys=[b"k"], headers=[[("h", b"v")]], partition=1)
        assert broker.end_offsets("t") == {0: 3, 1: 1}
        assert broker.committed("nobody", "t") == {0: None, 1: None}

        broker.restart()  # memory storage: the topic is gone, the address is the same
        assert broker.bootstrap_servers == f"{host}:{port}"
        broker.create_topic("t", partitions=1)
        assert broker.end_offsets("t") == {0: 0}
        pid = broker.pid
    assert pid is not None


def test_example_events_are_distinct_and_about_a_kilobyte() -> None:
    events = list(example_events(70))
    assert len({e.value for e in events}) == 70
    assert {e.topic for e in events} == {"signups", "payments", "orders"}
    assert all(1000 <= len(e.value) <= 1100 for e in events)
    assert list(example_events(3, start=5)) == events[5:8]
