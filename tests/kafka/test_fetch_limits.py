"""What the Kafka consumer may buffer ahead of the loop: bounded, whatever the backlog.

bench/backlog.py found the bound too loose: at 4 MiB per fetch a deep backlog over 9
partitions on Tansu kept 9 fetched buffers of ~4.2 MB (37 MB) and peak RSS at 131-139 MB.
"""

from __future__ import annotations

import pytest

from brew_bridge.config import KafkaConfig
from brew_bridge.sources.kafka.source import fetch_limits

MIB = 1024 * 1024


@pytest.mark.parametrize("max_record_bytes", [1, MIB, 8 * MIB])
def test_a_fetch_asks_for_at_most_one_mebibyte(max_record_bytes: int) -> None:
    limits = fetch_limits(KafkaConfig(max_record_bytes=max_record_bytes))
    assert limits["fetch_max_bytes"] <= MIB


@pytest.mark.parametrize("max_record_bytes", [1, MIB, 8 * MIB])
def test_the_largest_accepted_record_fits_one_partition_fetch(max_record_bytes: int) -> None:
    limits = fetch_limits(KafkaConfig(max_record_bytes=max_record_bytes))
    assert limits["max_partition_fetch_bytes"] > max_record_bytes
