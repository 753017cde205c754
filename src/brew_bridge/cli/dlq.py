"""``brew-bridge dlq``: list, show and redrive dead letters.

Works on the outbox file directly (the bridge may be running: SQLite WAL lets both
read and write), found through ``--config FILE`` (its ``outbox.path``) or ``--outbox
PATH``. Redriving an ingest dead letter re-routes its original record with the routes
of ``--config``; see :mod:`brew_bridge.core.redrive` for what a redrive does per stage.

Also home of the small helpers the ``outbox`` command shares: the outbox-locating
arguments and ``--since`` parsing (``format_duration`` is re-exported from
:mod:`brew_bridge.timefmt`).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brew_bridge.cli.output import Column, Output
from brew_bridge.errors import BridgeError
from brew_bridge.timefmt import format_duration, iso_utc, parse_iso

if TYPE_CHECKING:
    from brew_bridge.config import BridgeConfig
    from brew_bridge.store import DeadLetterRow, Outbox

from brew_bridge.cli.subcommand import Subparsers

__all__ = [
    "CliError",
    "add_outbox_arguments",
    "dead_letter_json",
    "format_duration",
    "iso_time",
    "locate_outbox",
    "parse_since",
    "register",
]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*$")


# `dlq list`: the longer cells are cut to these widths, so one row stays one line.
_LIST_COLUMNS = (
    Column("id"),
    Column("created"),
    Column("stage", coloured=True),
    Column("reason", coloured=True),
    Column("code", 28, coloured=True),
    Column("route", 24),
    Column("key", 40),
    Column("message", 60),
)


class CliError(BridgeError):
    """A command cannot go on; the message says what to do. Exit code 1."""


# --- shared helpers ---------------------------------------------------------------------


def parse_since(text: str, now: float) -> float:
    """``--since`` as epoch seconds: a duration back from ``now`` (``90s``, ``30m``, ``1h``,
    ``2d``, ``1w``) or an ISO-8601 time (``2024-05-01T12:00:00Z``; no zone means UTC)."""
    match = _DURATION.match(text)
    if match:
        return now - float(match[1]) * _UNITS[match[2]]
    when = parse_iso(text)
    if when is None:
        raise ValueError(
            f"{text!r} is neither a duration (90s, 30m, 1h, 2d, 1w) "
            "nor an ISO time (2024-05-01T12:00:00Z)"
        )
    return when


def iso_time(ts: float | None) -> str | None:
    return None if ts is None else iso_utc(ts, timespec="seconds")


def add_outbox_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and/or ``--outbox PATH``: where the outbox is (``--outbox`` wins)."""
    parser.add_argument("--config", metavar="FILE", help="bridge config (its outbox.path is used)")
    parser.add_argument("--outbox", metavar="PATH", help="the outbox SQLite file itself")


def locate_outbox(args: argparse.Namespace) -> tuple[Path, BridgeConfig | None]:
    """The outbox path, and the loaded config when ``--config`` was given.

    Refuses a path that does not exist: opening it would create an empty outbox and
    report nothing, which hides a wrong path.
    """
    config = None
    if args.config is not None:
        from brew_bridge.config import load_config

        config = load_config(args.config)
    if args.outbox is not None:
        path, origin = Path(args.outbox), "--outbox"
    elif config is not None:
        path, origin = Path(config.outbox.path), f"outbox.path in {args.config}"
    else:
        raise CliError("say where the outbox is: --config FILE or --outbox PATH")
    if not path.is_file():
        raise CliError(f"no outbox at {path} ({origin}); is the path right?")
    return path, config


def _bytes_json(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        return {"encoding": "utf-8", "data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "data": base64.b64encode(data).decode("ascii")}


def dead_letter_json(dl: DeadLetterRow, *, with_value: bool = True) -> dict[str, Any]:
    """A dead letter as JSON: every field, times as ISO and epoch, bytes as text or base64."""
    doc: dict[str, Any] = {
        "id": dl.id,
        "stage": dl.stage,
        "reason": dl.reason,
        "code": dl.code,
        "message": dl.message,
        "attempts": dl.attempts,
        "route": dl.route,
        "idempotencyKey": dl.idempotency_key,
        "deliveryId": dl.delivery_id,
        "runId": dl.run_id,
    }
    for name, attr in (
        ("createdAt", "created_at"),
        ("firstErrorAt", "first_error_at"),
        ("lastErrorAt", "last_error_at"),
        ("redrivenAt", "redriven_at"),
        ("publishedAt", "published_at"),
    ):
        ts = getattr(dl, attr)
        doc[name] = iso_time(ts)
        doc[name + "Epoch"] = ts
    doc["details"] = dl.details
    record = dl.record
    if record is None:
        doc["record"] = None
    else:
        rec: dict[str, Any] = {
            "source": record.source,
            "stream": record.stream,
            "position": record.position,
            "timestampMs": record.timestamp_ms,
            "key": _bytes_json(record.key),
            "headers": [{"key": k, "value": _bytes_json(v)} for k, v in record.headers],
            "valueBytes": len(record.value),
        }
        if with_value:
            rec["value"] = _bytes_json(record.value)
        doc["record"] = rec
    return doc


def _since_arg(text: str) -> float:
    try:
        return parse_since(text, time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- commands ---------------------------------------------------------------------------


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "dlq",
        help="list, show and redrive dead letters",
        description="Dead letters: events that could not be delivered, with why.",
    )
    actions = parser.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)

    p_list = actions.add_parser("list", help="list dead letters, newest first")
    add_outbox_arguments(p_list)
    _add_filters(p_list)
    p_list.add_argument("--limit", type=int, default=100, help="at most N (default 100)")
    p_list.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p_list.set_defaults(func=_cmd_list)

    p_show = actions.add_parser("show", help="everything about one dead letter, as JSON")
    add_outbox_arguments(p_show)
    p_show.add_argument("id", type=int, help="dead letter id")
    p_show.set_defaults(func=_cmd_show)

    p_redrive = actions.add_parser(
        "redrive",
        help="send dead letters back through the pipeline with their original key",
        description=(
            "Ingest dead letters are re-routed with --config's routes (fix the config "
            "first); fire and run dead letters are fired again with the same "
            "Idempotency-Key, which Brew answers with a replay of the original fire if "
            "it is < 24 h old: --new-key makes a failed run really run again."
        ),
    )
    add_outbox_arguments(p_redrive)
    p_redrive.add_argument("ids", type=int, nargs="*", metavar="ID", help="dead letter id(s)")
    _add_filters(p_redrive)
    p_redrive.add_argument(
        "--limit", type=int, default=10_000, help="at most N selected by filters (default 10000)"
    )
    p_redrive.add_argument("--dry-run", action="store_true", help="say what would happen only")
    p_redrive.add_argument(
        "--new-key",
        action="store_true",
        help="fire with a new key derived from the old one (<key>:redrive-N)",
    )
    p_redrive.add_argument(
        "--force",
        action="store_true",
        help="redrive already redriven ones, and --new-key ones that could send again what "
        "was sent (a run's whole trigger; a fire whose attempts got no clear answer)",
    )
    p_redrive.set_defaults(func=_cmd_redrive)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="only this reason (e.g. mapping_error, run_failed)")
    parser.add_argument("--route", help="only this route")
    parser.add_argument(
        "--since",
        type=_since_arg,
        metavar="T",
        help="created since T: a duration back from now (30m, 1h, 2d) or an ISO time (UTC)",
    )


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        code: int = func(args)
    except BridgeError as exc:
        print(f"brew-bridge dlq: {exc}", file=sys.stderr)
        return 1
    return code


def _cmd_list(args: argparse.Namespace) -> int:
    return _run(_list, args)


def _cmd_show(args: argparse.Namespace) -> int:
    return _run(_show, args)


def _cmd_redrive(args: argparse.Namespace) -> int:
    return _run(_redrive, args)


def _open(args: argparse.Namespace) -> tuple[Outbox, BridgeConfig | None]:
    from brew_bridge.store import Outbox

    path, config = locate_outbox(args)
    return Outbox.open(path), config


def _list(args: argparse.Namespace) -> int:
    outbox, _ = _open(args)
    try:
        rows = outbox.dead_letters(
            reason=args.reason, route=args.route, since=args.since, limit=args.limit
        )
    finally:
        outbox.close()
    if args.json:
        for dl in rows:
            print(json.dumps(dead_letter_json(dl, with_value=False)))
        return 0
    out = Output()
    if not rows:
        out.line("no dead letters match")
        return 0
    out.table(
        _LIST_COLUMNS,
        [
            (
                dl.id,
                iso_time(dl.created_at),
                dl.stage,
                dl.reason,
                dl.code,
                dl.route,
                dl.idempotency_key,
                dl.message,
            )
            for dl in rows
        ],
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    outbox, _ = _open(args)
    try:
        dl = outbox.dead_letter(args.id)
    finally:
        outbox.close()
    if dl is None:
        raise CliError(f"no dead letter with id {args.id} (see `brew-bridge dlq list`)")
    print(json.dumps(dead_letter_json(dl), indent=2, default=str))
    return 0


def _redrive(args: argparse.Namespace) -> int:
    from brew_bridge.core.redrive import apply_redrive, plan_redrive

    filtered = args.reason is not None or args.route is not None or args.since is not None
    if args.ids and filtered:
        raise CliError("give dead letter ids or --reason/--route/--since, not both")
    if not args.ids and not filtered:
        raise CliError("say what to redrive: dead letter id(s), or --reason/--route/--since")
    outbox, config = _open(args)
    try:
        routes = None
        if config is not None:
            from brew_bridge.config import compiled_routes

            routes = compiled_routes(config)
        if args.ids:
            selected = []
            for dl_id in args.ids:
                dl = outbox.dead_letter(dl_id)
                if dl is None:
                    raise CliError(f"no dead letter with id {dl_id} (see `brew-bridge dlq list`)")
                selected.append(dl)
        else:
            selected = outbox.dead_letters(
                reason=args.reason, route=args.route, since=args.since, limit=args.limit
            )
        fired = {
            dl.delivery_id for dl in selected if dl.stage == "run" and dl.delivery_id is not None
        }
        steps = plan_redrive(
            selected,
            routes=routes,
            new_key=args.new_key,
            force=args.force,
            runs_by_delivery={d: outbox.run_counts(d) for d in fired},
        )
        if args.dry_run:
            from brew_bridge.core.redrive import RedriveSummary

            summary = RedriveSummary(steps=tuple(steps), dry_run=True)
        else:
            summary = apply_redrive(outbox, steps, time.time())
    finally:
        outbox.close()
    for line in summary.lines():
        print(line)
    return 0
