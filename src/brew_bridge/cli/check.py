"""``brew-bridge check --config FILE``: is this config good to start with?

Loads the config exactly as ``run`` would (YAML, ``BREW_BRIDGE_*`` overrides, the API key
source) and compiles every route, then prints every problem at once, one a line:
``file:line: key.path: message (fix: what to write instead)``. Exit 0 when the config is
valid (with a short summary of what it routes), 2 when it is not: usable in CI and in
an init container before the bridge starts.

``--online`` then pre-flights every target and trigger the routes use, reading only
(:mod:`brew_bridge.cli.preflight`): exit 0 when every route would work, 3 when one would
fail, 4 when a target could not be checked (key refused, unreachable).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brew_bridge.cli.subcommand import Subparsers
from brew_bridge.config import BridgeConfig, compiled_routes, load_config
from brew_bridge.config.queues import QUEUE_KINDS, redacted_url
from brew_bridge.errors import ConfigError
from brew_bridge.mapping.routing import CompiledRoutes

__all__ = ["register", "report_problems", "summary"]

EXIT_VALID = 0
EXIT_INVALID = 2
# ``--online`` (brew_bridge.cli.preflight): a route would fail / a target could not be checked.
EXIT_WOULD_FAIL = 3
EXIT_CANNOT_CHECK = 4


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a config file and print every problem at once",
        description=(
            "Validate a config file (with the BREW_BRIDGE_* environment applied) and compile "
            "its routes. Prints every problem with file, line, key and fix. "
            "Exit 0 when valid, 2 when not. With --online, then read (never fire) every "
            "target and trigger the routes use: exit 0 when every route would work, 3 when "
            "one would fail, 4 when a target could not be checked (key refused, unreachable)."
        ),
    )
    parser.add_argument("--config", required=True, type=Path, metavar="FILE", help="YAML config")
    parser.add_argument(
        "--online",
        action="store_true",
        help="pre-flight the live targets: ready checks, live payloadSchemas, samples",
    )
    parser.add_argument(
        "--sample",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="with --online: an event (or a saved webhook delivery, .http) to map through "
        "the routes and check against the live schema (repeatable)",
    )
    parser.add_argument(
        "--samples",
        action="append",
        type=Path,
        default=[],
        metavar="MANIFEST",
        help="with --online: a samples manifest (as config/samples/manifest.yaml)",
    )
    parser.set_defaults(func=_run)


def _match_text(config: BridgeConfig, index: int) -> str:
    match = config.routes[index].match
    parts: list[str] = []
    if match.type is not None:
        parts.append("type " + "|".join(match.type))
    parts.extend(f"{name}={'|'.join(values)}" for name, values in match.headers.items())
    if match.filter is not None:
        parts.append("filter")
    return ", ".join(parts) or "every event"


def summary(config: BridgeConfig, routes: CompiledRoutes, file: str) -> list[str]:
    """The lines ``check`` prints for a valid config."""
    topics = sorted(routes.streams_of("kafka"))
    webhooks = sorted(routes.streams_of("webhook"))
    triggers = sorted({route.action for route in routes.routes})
    key_state = (
        "set"
        if config.brew.api_key is not None
        else "not set (run needs BREW_API_KEY or a key file)"
    )
    lines = [
        f"{file}: valid",
        f"  {len(routes.routes)} routes, {len(topics)} topics ({', '.join(topics)}), "
        f"{len(triggers)} triggers ({', '.join(triggers)})",
    ]
    if webhooks:
        lines.append(
            f"  {len(webhooks)} webhook sources: "
            + ", ".join(f"POST /webhooks/{name}" for name in webhooks)
        )
    read = {f"{kind}.{name}" for kind in QUEUE_KINDS for name in routes.streams_of(kind)}
    declared = config.sources.declared()
    queues = [f"{q} ({redacted_url(s.url)})" for q, s in declared.items() if q in read]
    if queues:
        lines.append(f"  {len(queues)} queue sources: {', '.join(queues)}")
    unread = sorted(set(declared) - read)
    if unread:
        lines.append(f"  WARNING: no route reads {', '.join(unread)}: nothing consumes them")
    unset = [v for s in config.webhooks.sources.values() for v in s.unset]
    if unset:
        lines.append(f"  webhook secrets not set (run needs them): {', '.join(unset)}")
    unsigned = [n for n, s in config.webhooks.sources.items() if s.scheme == "none"]
    if unsigned:
        lines.append(f"  WARNING: webhook sources {', '.join(unsigned)} accept unsigned requests")
    width = max(len(route.name) for route in routes.routes) if routes.routes else 0
    for index, route in enumerate(routes.routes):
        fires = route.action if route.target == "brew" else f"{route.target}:{route.action}"
        lines.append(
            f"  {route.name:<{width}}  {','.join(sorted(s for _, s in route.streams))}: "
            f"{_match_text(config, index)} -> {fires}"
        )
    lines.append(
        f"  no_route: {config.no_route}; Brew: {config.brew.base_url}; API key: {key_state}"
    )
    for name, target in sorted(config.targets.items()):
        state = (
            "set"
            if target.api_key is not None
            else f"not set (run needs {target.api_key_env} or targets.{name}.api_key_file)"
        )
        lines.append(f"  target {name} ({target.kind}): {target.base_url}; API key: {state}")
    return lines


def report_problems(config_path: Path, exc: ConfigError) -> int:
    """Every problem of an invalid config on stdout, their count on stderr; the exit code."""
    for problem in exc.problems:
        print(problem)
    count = len(exc.problems)
    print(f"{config_path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
    return EXIT_INVALID


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        routes = compiled_routes(config)
    except ConfigError as exc:
        return report_problems(args.config, exc)
    print("\n".join(summary(config, routes, str(args.config))))
    if not args.online:
        return EXIT_VALID
    return _online(config, routes, args)


def _online(config: BridgeConfig, routes: CompiledRoutes, args: argparse.Namespace) -> int:
    from brew_bridge.cli import preflight
    from brew_bridge.observe.logs import configure_logging

    # The report says what went wrong, one line each; the clients' own logs (a refused
    # key, a switch of API shape) go to stderr and only when they are errors.
    configure_logging("ERROR", config.logging.format, cache=False)
    samples, skipped = preflight.load_samples(config, args.sample, args.samples)
    report = preflight.run_preflight(config, routes, samples)
    print(f"{args.config}: online check")
    for line in [*skipped, *report.lines()]:
        print(f"  {line}")
    code = preflight.exit_code(report.problems)
    failing = [p for p in report.problems if p.severity != "warn"]
    if code != EXIT_VALID:
        count = len(failing)
        print(f"{args.config}: {count} online problem{'s' if count != 1 else ''}", file=sys.stderr)
    return code
