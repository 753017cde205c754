"""The official Brew SDK (@brew.new/sdk@9.3.0 on Node) against the simulator, over real HTTP.

Why: every other test trusts the simulator. This one has the official client read the
simulator's answers (fires, replays, conflicts, pre-flight, runs and logs, cursors, cancels,
404/409/422/429/401/403) and checks the client sees each as it would see the real API's: the
right status, code, type, retryAfter and requestId on its BrewApiError, and every error body
read as an envelope rather than the SDK's "unknown_error" fallback.

The checks themselves live in sdk_fidelity.mjs (one JSON line per check); this wrapper fetches
the SDK into the git-ignored .brew-sdk/ (cached), starts the simulator on a free loopback port,
runs the driver with a deadline and fails naming every check that did not pass. It skips only
when Node >= 20 is absent or the npm registry cannot be reached to fetch the SDK.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from brew_bridge.testing.simulator import running_simulator

__all__: list[str] = []

REPO_ROOT = Path(__file__).resolve().parents[2]
# CI and the work tree both keep the read-only shared/ folder beside the clone.
FETCH_TOOL = REPO_ROOT.parent / "shared" / "tools" / "brew-sdk.sh"
SDK_CACHE = REPO_ROOT / ".brew-sdk"
SDK_VERSION = "9.3.0"
DRIVER = Path(__file__).with_name("sdk_fidelity.mjs")
MIN_NODE = 20
DRIVER_TIMEOUT_S = 120
FETCH_TIMEOUT_S = 240

# The checks the issue asks for by name; the driver has more. A driver that silently stopped
# emitting one of these must not pass.
REQUIRED_CHECKS = frozenset(
    {
        "trigger_create_201",
        "fire_triggered_200",
        "fire_replay_same_runs",
        "fire_same_key_other_body_409",
        "ready_200",
        "runs_detail_with_logs_until_end",
        "runs_list_pages_newest_first",
        "cancel_live_run_200",
        "cancel_again_409",
        "fire_unknown_trigger_404",
        "runs_detail_unknown_404",
        "fire_only_draft_automations_422",
        "rate_limited_429",
        "auth_invalid_key_401",
    }
)

pytestmark = pytest.mark.node


@pytest.fixture(scope="session")
def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip(f"Node.js is not installed; the official Brew SDK needs Node >= {MIN_NODE}")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    major = int(version.lstrip("v").split(".", 1)[0])
    if major < MIN_NODE:
        pytest.skip(f"Node {version} is too old; the official Brew SDK needs Node >= {MIN_NODE}")
    return node


def _npm_env() -> dict[str, str]:
    """npm's own retries make an offline fetch take minutes; fail fast unless told otherwise."""
    env = dict(os.environ)
    env.setdefault("npm_config_fetch_retries", "1")
    env.setdefault("npm_config_fetch_retry_mintimeout", "2000")
    env.setdefault("npm_config_fetch_timeout", "30000")
    return env


def _registry_reachable() -> bool:
    try:
        ping = subprocess.run(
            ["npm", "ping"], capture_output=True, text=True, env=_npm_env(), timeout=60
        )
    except subprocess.TimeoutExpired:
        return False
    return ping.returncode == 0


@pytest.fixture(scope="session")
def brew_sdk(node_binary: str) -> Path:
    """The unpacked SDK package dir, fetched once into .brew-sdk/ and reused after."""
    if not FETCH_TOOL.is_file():
        pytest.fail(f"{FETCH_TOOL} is missing: the clone must sit beside the shared/ folder")
    SDK_CACHE.mkdir(exist_ok=True)
    # Two pytest processes must not unpack into the same folder at once.
    with (SDK_CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fetch = subprocess.run(
            ["bash", str(FETCH_TOOL), str(SDK_CACHE), SDK_VERSION],
            capture_output=True,
            text=True,
            env=_npm_env(),
            timeout=FETCH_TIMEOUT_S,
        )
    package = SDK_CACHE / "package"
    if fetch.returncode == 0 and (package / "dist" / "index.js").is_file():
        return package
    if shutil.which("npm") is None:
        pytest.skip(f"npm is not installed, so @brew.new/sdk@{SDK_VERSION} cannot be fetched")
    if not _registry_reachable():
        pytest.skip(f"the npm registry is unreachable; cannot fetch @brew.new/sdk@{SDK_VERSION}")
    pytest.fail(
        f"fetching @brew.new/sdk@{SDK_VERSION} failed although the npm registry answers "
        f"(exit {fetch.returncode}):\n{fetch.stdout}{fetch.stderr}"
    )


def _parse_lines(stdout: str) -> list[dict[str, Any]]:
    lines = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _describe(checks: list[dict[str, Any]]) -> str:
    return "\n".join(f"- {c['check']}: {c['detail']}" for c in checks if not c["ok"])


@pytest.mark.timeout(DRIVER_TIMEOUT_S + FETCH_TIMEOUT_S + 60)
def test_official_sdk_reads_the_simulator_like_the_real_api(
    node_binary: str, brew_sdk: Path
) -> None:
    env = {**os.environ, "BREW_SDK_DIR": str(brew_sdk)}
    with running_simulator() as sim:
        try:
            run = subprocess.run(
                [node_binary, str(DRIVER), sim.base_url, sim.root_url],
                capture_output=True,
                text=True,
                env=env,
                timeout=DRIVER_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            finished = [c for c in _parse_lines(out) if "check" in c]
            last = finished[-1]["check"] if finished else "none"
            pytest.fail(
                f"the SDK driver did not finish within {DRIVER_TIMEOUT_S} s; "
                f"last finished check: {last}\n{_describe(finished)}"
            )

    lines = _parse_lines(run.stdout)
    checks = [line for line in lines if "check" in line]
    summary = next((line for line in lines if line.get("done")), None)
    crashed = f"the SDK driver crashed (exit {run.returncode}):\n{run.stderr}\n{run.stdout}"
    assert run.returncode in (0, 1), crashed
    assert summary is not None, crashed
    failed = [c for c in checks if not c["ok"]]
    assert not failed, (
        f"{len(failed)} of {len(checks)} SDK fidelity checks failed:\n{_describe(checks)}"
    )
    missing = REQUIRED_CHECKS - {c["check"] for c in checks}
    assert not missing, f"the SDK driver never ran: {sorted(missing)}"
    assert run.returncode == 0, run.stderr
