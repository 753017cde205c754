"""``brew-bridge outbox stats`` and ``outbox prune``: what is waiting, in flight and
dead, at a glance; and deleting finished work by hand.

Reads the outbox file (safe beside a running bridge: WAL) found through ``--config``
or ``--outbox``. The first question at 3 a.m. is "is it stuck?": the oldest pending
age answers it, in words and in seconds. ``prune`` does what the worker does hourly
(``outbox.retention_seconds``), for a bridge that is stopped or to catch up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from brew_bridge.cli.dlq import (
    CliError,
    add_outbox_arguments,
    format_duration,
    iso_time,
    locate_outbox,
    parse_since,
)
from brew_bridge.cli.output import Column, Output, counts_text
from brew_bridge.errors import BridgeError

if TYPE_CHECKING:
    from brew_bridge.store import Outbox

from brew_bridge.cli.subcommand import Subparsers

__all__ = ["register", "stats_json"]


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("outbox", help="inspect the outbox, prune finished work")
    actions = parser.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    p_stats = actions.add_parser(
        "stats", help="counts by state, runs, dead letters, oldest pending age"
    )
    add_outbox_arguments(p_stats)
    p_stats.add_argument("--json", action="store_true", help="one JSON object")
    p_stats.set_defaults(func=_cmd_stats)
    p_prune = actions.add_parser(
        "prune",
        help="delete finished work older than the retention",
        description=_PRUNE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_outbox_arguments(p_prune)
    p_prune.add_argument(
        "--older-than",
        metavar="AGE",
        help="finished before this long ago (90m, 12h, 7d, 2w) or an ISO time (UTC); "
        "default: outbox.retention_seconds of --config, else 15d",
    )
    p_prune.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
    )
    p_prune.set_defaults(func=_cmd_prune)


_DEFAULT_RETENTION = 15 * 86400.0
_PRUNE_HELP = """\
Delete fired deliveries, dead ones whose dead letters were redriven, their finished
runs, redriven dead letters, and the records nothing refers to any more, once older
than --older-than. Never deletes anything pending, retrying or firing, a live run, or
a dead letter not yet redriven.

A delivery row is what makes the bridge refuse an event it already fired. Prune only
what no source can replay any more: --older-than (and outbox.retention_seconds) must be
longer than every source topic keeps records (Kafka: retention.ms + segment.ms), or a
replay from the earliest offset sends those emails again.

Exit codes: 0 done (or nothing to do), 1 error."""


def stats_json(outbox: Outbox, now: float) -> dict[str, Any]:
    """The stats of an open :class:`~brew_bridge.store.outbox.Outbox` as one JSON-ready object."""
    stats = outbox.stats(now)
    age = stats.oldest_pending_age
    return {
        "deliveries": dict(stats.deliveries),
        "backlog": stats.backlog,
        "oldestPendingAgeSeconds": None if age is None else round(age, 3),
        "oldestPendingAge": None if age is None else format_duration(age),
        "runs": {"live": stats.live_runs, "byStatus": dict(sorted(stats.runs_by_status.items()))},
        "deadLetters": {
            "total": stats.dead_letters,
            "notRedriven": stats.dead_letters_unredriven,
            "notPublished": stats.dead_letters_unpublished,
            "byReason": outbox.dead_letters_by_reason(),
            "notRedrivenByReason": outbox.dead_letters_by_reason(unredriven_only=True),
        },
    }


def _oldest(doc: dict[str, Any]) -> str:
    age = doc["oldestPendingAge"]
    return "none waiting" if age is None else f"{age} ({doc['oldestPendingAgeSeconds']:.0f} s)"


def _dead_line(dead: dict[str, Any]) -> str:
    return (
        f"{dead['total']} ({dead['notRedriven']} not redriven, "
        f"{dead['notPublished']} not published to the DLQ topic)"
    )


def _render(doc: dict[str, Any]) -> str:
    """The plain form: one line per question, stable for scripts and greps."""
    dead = doc["deadLetters"]
    open_by_reason = dead["notRedrivenByReason"]
    by_reason = ", ".join(
        f"{reason} {n}"
        + (f" ({open_by_reason[reason]} not redriven)" if reason in open_by_reason else "")
        for reason, n in dead["byReason"].items()
    )
    lines = [
        f"deliveries      {counts_text(doc['deliveries'])}",
        f"backlog         {doc['backlog']} (pending + retry_wait + firing)",
        f"oldest pending  {_oldest(doc)}",
        f"runs            {doc['runs']['live']} live; {counts_text(doc['runs']['byStatus'])}",
        f"dead letters    {_dead_line(dead)}",
    ]
    if by_reason:
        lines.append(f"  by reason     {by_reason}")
    return "\n".join(lines)


def _print_stats(doc: dict[str, Any], out: Output) -> None:
    if not out.rich:
        out.line(_render(doc))
        return
    # A terminal: the same answers, the counts as coloured tables.
    out.tally([("deliveries", doc["deliveries"]), ("ended runs", doc["runs"]["byStatus"])])
    out.line(f"backlog         {doc['backlog']} (pending + retry_wait + firing)")
    out.line(f"oldest pending  {_oldest(doc)}")
    out.line(f"live runs       {doc['runs']['live']}")
    dead = doc["deadLetters"]
    out.line(f"dead letters    {_dead_line(dead)}")
    if dead["byReason"]:
        out.table(
            [Column("reason", coloured=True), Column("count"), Column("not redriven")],
            [
                (reason, n, dead["notRedrivenByReason"].get(reason, 0))
                for reason, n in dead["byReason"].items()
            ],
            title="Dead letters",
        )


def _cmd_stats(args: argparse.Namespace) -> int:
    from brew_bridge.store import Outbox

    try:
        path, _ = locate_outbox(args)
        outbox = Outbox.open(path)
        try:
            doc = stats_json(outbox, time.time())
        finally:
            outbox.close()
    except BridgeError as exc:
        print(f"brew-bridge outbox: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc))
        return 0
    _print_stats(doc, Output())
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    from brew_bridge.store import Outbox

    now = time.time()
    try:
        path, config = locate_outbox(args)
        if args.older_than is not None:
            try:
                before = parse_since(args.older_than, now)
            except ValueError as exc:
                raise CliError(f"--older-than: {exc}") from None
        else:
            retention = _DEFAULT_RETENTION if config is None else config.outbox.retention_seconds
            if retention <= 0:
                raise CliError(
                    f"outbox.retention_seconds is 0 in {args.config} (keep forever); "
                    "give --older-than to prune anyway"
                )
            before = now - retention
        outbox = Outbox.open(path)
        try:
            result = outbox.prune(before, dry_run=args.dry_run)
        finally:
            outbox.close()
    except BridgeError as exc:
        print(f"brew-bridge outbox prune: {exc}", file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} {result.deliveries} deliveries, {result.runs} runs, "
        f"{result.dead_letters} dead letters, {result.records} records "
        f"finished before {iso_time(before)} ({format_duration(now - before)} ago)"
    )
    return 0
