"""Fixtures for the Prometheus tests: the real ``promtool`` and ``prometheus`` binaries.

They come from Debian's ``prometheus`` package, which ``.ci/run`` installs; where they
are missing the tests skip, saying how to get them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# The simulator, outbox and worker helpers are shared with the delivery tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "delivery"))

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "rules.yaml"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} not found: install Debian's prometheus package "
            "(apt-get install prometheus); .ci/run installs it, so CI never skips this"
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _binary("prometheus")
