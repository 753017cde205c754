"""The pure helpers of the dlq/outbox commands: --since parsing and human durations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from brew_bridge.cli.dlq import format_duration, iso_time, parse_since

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "ago"),
    [("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172_800), ("1w", 604_800), ("1.5h", 5400)],
)
def test_since_durations_count_back_from_now(text: str, ago: float) -> None:
    assert parse_since(text, NOW) == NOW - ago


def test_since_iso_with_zone() -> None:
    expected = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
    assert parse_since("2024-05-01T12:00:00Z", NOW) == expected
    assert parse_since("2024-05-01T14:00:00+02:00", NOW) == expected


def test_since_iso_without_zone_is_utc() -> None:
    assert (
        parse_since("2024-05-01T12:00:00", NOW) == datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()
    )
    assert parse_since("2024-05-01", NOW) == datetime(2024, 5, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("text", ["5", "yesterday", "1y", "", "h1"])
def test_since_refuses_what_it_cannot_read_and_says_what_works(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration \(90s, 30m, 1h, 2d, 1w\)"):
        parse_since(text, NOW)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "0.2s"),
        (45, "45s"),
        (60, "1m"),
        (3725, "1h 2m"),
        (90_061, "1d 1h"),
        (86_400 + 900, "1d"),  # not "1d 15m": the unit after days is hours
        (3600 + 30, "1h"),
        (-3, "0.0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_iso_time() -> None:
    assert iso_time(None) is None
    assert iso_time(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()) == "2024-05-01T12:00:00Z"
