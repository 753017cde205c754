"""``brew-bridge map --config FILE [--topic T | --webhook NAME] EVENT|-``: a dry run of one event.

What users need while writing routes: which routes take the event, the payload each
would fire with, its Idempotency-Key and the payloadSchema verdict, or why the event
dead-letters (``invalid_json``, ``no_route``, ``mapping_error``, ``payload_invalid``,
``too_large``). Runs exactly the code the bridge runs (``route_record``), offline: no
Kafka, no Brew. With ``--webhook`` the file is a saved delivery (headers, an empty line,
the body; see :mod:`brew_bridge.sources.webhooks.saved`) and the record is what that
webhook source would store (its delivery id, the headers it keeps); the signature is
not checked. Prints JSON. Exit 0 when every matched route delivers, 1 when the event
(or one of its routes) dead-letters or is dropped, 2 on a bad config or unreadable event.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from brew_bridge.cli.subcommand import Subparsers
from brew_bridge.config import BridgeConfig, compiled_routes, load_config
from brew_bridge.errors import ConfigError
from brew_bridge.events import NewDeadLetter, NewDelivery, Routed, SourceRecord
from brew_bridge.mapping.routing import CompiledRoutes, route_record
from brew_bridge.sources.webhooks import build_scheme, parse_saved_delivery, webhook_record

__all__ = ["map_report", "register"]

EXIT_DELIVERS = 0
EXIT_DEAD_LETTER = 1
EXIT_BAD_INPUT = 2


def _header(text: str) -> tuple[str, bytes]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value.encode("utf-8")


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "map",
        help="show what the routes make of one event (payloads, keys, verdicts)",
        description=(
            "Route one event offline, as the bridge would, and print as JSON each matched "
            "route's payload, Idempotency-Key and payloadSchema verdict, or the reason it "
            "dead-letters. Exit 0 when it delivers, 1 when it dead-letters, 2 on a bad config."
        ),
    )
    parser.add_argument("--config", required=True, type=Path, metavar="FILE", help="YAML config")
    arrives = parser.add_mutually_exclusive_group()
    arrives.add_argument(
        "--topic",
        help="the topic the event arrives on (default: try every route, whatever its topic)",
    )
    arrives.add_argument(
        "--webhook",
        metavar="NAME",
        help="EVENT is a saved delivery (headers, empty line, body) to webhook source NAME; "
        "'-' takes the name from its request line (POST /webhooks/NAME)",
    )
    parser.add_argument(
        "--header",
        action="append",
        type=_header,
        default=[],
        metavar="NAME=VALUE",
        help="a record header (repeatable), e.g. x-shopify-topic=orders/create",
    )
    parser.add_argument("--key", help="the record key")
    parser.add_argument("event", metavar="EVENT", help="the event file (the record value), or -")
    parser.set_defaults(func=_run)


def _delivery(delivery: NewDelivery, routes: CompiledRoutes) -> dict[str, Any]:
    # The route's own check: a trigger's payloadSchema for Brew, any object elsewhere.
    validator = next(r.validator for r in routes.routes if r.name == delivery.route)
    verdict = validator.check(delivery.payload)
    return {
        "route": delivery.route,
        "trigger": delivery.action,
        "idempotencyKey": delivery.idempotency_key,
        "eventId": delivery.event_id,
        "orderingKey": delivery.ordering_key,
        "payload": delivery.payload,
        "validation": {"ok": verdict.ok, "warnings": [w.to_wire() for w in verdict.warnings]},
    }


def _dead_letter(dead: NewDeadLetter) -> dict[str, Any]:
    return {
        "route": dead.route,
        "reason": dead.reason.value,
        "message": dead.message,
        "idempotencyKey": dead.idempotency_key,
        "details": dead.details,
    }


def map_report(routed: Routed, routes: CompiledRoutes, *, any_topic: bool) -> dict[str, Any]:
    """The JSON ``map`` prints for one routed record."""
    return {
        "topic": None if any_topic else routed.record.stream,
        "deliveries": [_delivery(d, routes) for d in routed.deliveries],
        "deadLetters": [_dead_letter(d) for d in routed.dead_letters],
        "dropped": routed.dropped,
    }


def _webhook_record(config: BridgeConfig, name: str, data: bytes) -> SourceRecord:
    """The record webhook source ``name`` would store for a saved delivery."""
    saved = parse_saved_delivery(data)
    if name == "-":
        if saved.source is None:
            raise ValueError("no request line (POST /webhooks/NAME): pass --webhook NAME")
        name = saved.source
    source = config.webhooks.sources.get(name)
    if source is None:
        known = ", ".join(sorted(config.webhooks.sources)) or "none"
        raise ValueError(f"no webhook source {name!r} in the config (it has: {known})")
    headers = {key.lower(): value for key, value in saved.headers}
    record, _ = webhook_record(name, build_scheme(source), headers, saved.body, 0.0)
    return record


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        routes = compiled_routes(config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        value = sys.stdin.buffer.read() if args.event == "-" else Path(args.event).read_bytes()
    except OSError as exc:
        print(f"{args.event}: cannot read the event: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    any_topic = args.topic is None and args.webhook is None
    if args.webhook is not None:
        try:
            record = _webhook_record(config, args.webhook, value)
        except ValueError as exc:
            print(f"{args.event}: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    else:
        record = SourceRecord(
            source="kafka",
            stream=args.topic or "",
            position="0:0",
            key=args.key.encode("utf-8") if args.key is not None else None,
            value=value,
            headers=tuple(args.header),
        )
    routed = route_record(record, routes, any_topic=any_topic)
    report = map_report(routed, routes, any_topic=any_topic)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    delivers = bool(routed.deliveries) and not routed.dead_letters and not routed.dropped
    return EXIT_DELIVERS if delivers else EXIT_DEAD_LETTER
