"""The worker's own duties: the API key source, and stopping without losing a fire."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_support import (
    all_ended,
    automation,
    bridge_config,
    eventually,
    fires_by_key,
    outbox_view,
    queue,
    running_worker,
    seed,
    sim_runs_by_email,
    trigger,
)

from brew_bridge.config import BrewConfig, BridgeConfig
from brew_bridge.errors import ConfigError
from brew_bridge.targets.brew.apikey import brew_api_key
from brew_bridge.testing.simulator import running_simulator


def test_a_rotated_key_file_is_read_again(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("brew_first_key\n")
    config = BridgeConfig(brew=BrewConfig(api_key_file=str(key_file)))
    keys = brew_api_key(config, env={})
    assert keys() == "brew_first_key"
    key_file.write_text("brew_second_key_longer\n")
    assert keys() == "brew_second_key_longer"
    key_file.write_text("")  # a half-written secret keeps the last good key
    assert keys() == "brew_second_key_longer"


def test_the_environment_key_wins_and_no_key_is_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("brew_from_file")
    config = BridgeConfig(brew=BrewConfig(api_key_file=str(key_file)))
    assert brew_api_key(config, env={"BREW_API_KEY": "brew_from_env"})() == "brew_from_env"
    with pytest.raises(ConfigError, match="BREW_API_KEY") as caught:
        brew_api_key(BridgeConfig(), env={})
    assert "fix" in str(caught.value)


async def test_stopping_during_a_hung_fire_loses_nothing_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    faults = {"fire": {"next": [{"fault": "hang", "seconds": 3}]}}
    triggers = {"tri_welcome": trigger(automation("welcome", ms=100))}
    with running_simulator(seed(triggers, faults=faults)) as sim:
        config = bridge_config(tmp_path, sim, brew={"timeout_seconds": 1.0})
        queue(config, [("welcome", "tri_welcome", "k1", {"email": "u0@example.com"})])
        async with running_worker(config):
            await eventually(lambda: "k1" in fires_by_key(sim), what="the fire to be sent")
        # Stopped while the fire hung: the row waits for its next attempt, it is not lost.
        outbox = outbox_view(config)
        try:
            assert outbox.backlog() == 1
            assert outbox.dead_letters() == []
        finally:
            outbox.close()

        async with running_worker(config):
            await eventually(lambda: all_ended(config), what="the next start to deliver it")
        assert sim_runs_by_email(sim) == {"u0@example.com": 1}
        assert [e["status"] for e in fires_by_key(sim)["k1"]][-1] == 200
