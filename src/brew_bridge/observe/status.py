"""The read-only status page at ``/`` (and the same snapshot as ``/status.json``).

What an operator asks first, on one server-rendered page (no script, no CDN, inline
CSS, refreshed every few seconds by a ``<meta>`` tag): how deep the outbox is and how
old its oldest waiting row, how many fires each target's budget has taken in its
window, the runs by status, the dead letters by reason and the newest of them, each
target's auth circuit, and what to fix.

Two halves. :class:`StatusSnapshot` is plain data, built by :meth:`StatusSnapshot.of`
from what the outbox reports and what the worker knows (its lanes, its readiness);
:func:`render_status` and :func:`status_json` are pure functions of it. Every string a
page or a JSON document shows goes through :func:`~brew_bridge.observe.logs.safe_text`
(emails masked, keys redacted) when the snapshot is built, and the renderer masks again
before it escapes, so a string added later cannot slip past. A dead letter shows only
what is safe to show (reason, route, target, age, its record's place, the masked
message): never its payload, its record's value or its idempotency key (keys are often
made of an email).

Each panel is a ``<section>`` with a stable ``id`` and ``data-panel`` (the tests find
them so), and an empty one says so in words.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from brew_bridge.errors import BridgeError
from brew_bridge.observe.logs import safe_text
from brew_bridge.timefmt import format_duration, iso_utc

if TYPE_CHECKING:
    from brew_bridge.store import DeadLetterRow, OutboxOverview

__all__ = [
    "NEWEST_DEAD_LETTERS",
    "PANELS",
    "BudgetLine",
    "DeadLetterLine",
    "LaneStatus",
    "StatusSnapshot",
    "render_status",
    "status_json",
    "status_routes",
]

NEWEST_DEAD_LETTERS = 20  # how many of the newest dead letters the page lists
_REFRESH_SECONDS = 5

# Panel id -> heading, in page order.
PANELS: dict[str, str] = {
    "outbox": "Outbox",
    "budgets": "Rate budgets",
    "runs": "Runs",
    "circuits": "Circuits",
    "dead-letters": "Dead letters by reason",
    "fixes": "What to fix",
    "newest-dead-letters": f"Newest {NEWEST_DEAD_LETTERS} dead letters",
}


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One rate policy of one target: slots taken in its window (ours and, as the target
    last reported, other replicas'), of how many."""

    policy: str  # fire, run_read
    used: int
    limit: int
    window_seconds: float


@dataclass(frozen=True, slots=True)
class LaneStatus:
    """One target's lane: its auth circuit and its budgets."""

    target: str  # the config name: brew, pinkfish, boring_marketing
    title: str  # how operators call it
    circuit: str  # closed, open, half_open
    problem: str | None  # the gate's sentence (what the target said, what to fix) when open
    budgets: tuple[BudgetLine, ...]


@dataclass(frozen=True, slots=True)
class DeadLetterLine:
    """What the page shows of one dead letter: nothing of its payload, record or key."""

    id: int
    age_seconds: float
    stage: str
    reason: str
    code: str | None
    route: str | None
    target: str | None
    event: str | None  # the record's stream:position, or the run id
    message: str  # masked

    @classmethod
    def of(cls, dl: DeadLetterRow, now: float, targets: Mapping[str, str]) -> DeadLetterLine:
        """``targets`` maps route names to their target."""
        event = dl.record.coordinates if dl.record is not None else dl.run_id
        return cls(
            id=dl.id,
            age_seconds=max(0.0, now - dl.created_at),
            stage=dl.stage,
            reason=dl.reason,
            code=_safe(dl.code),
            route=_safe(dl.route),
            target=targets.get(dl.route) if dl.route is not None else None,
            event=_safe(event),
            message=safe_text(dl.message),
        )


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything the page shows, as of ``taken_at`` (epoch seconds)."""

    taken_at: float
    deliveries: Mapping[str, int]  # by state
    backlog: int  # pending + retry_wait + firing
    oldest_pending_age: float | None
    live_runs: int
    runs_by_status: Mapping[str, int]
    dead_letters: int
    dead_letters_by_reason: Mapping[str, int]
    not_redriven_by_reason: Mapping[str, int]
    newest_dead_letters: tuple[DeadLetterLine, ...]
    lanes: tuple[LaneStatus, ...]
    fixes: Mapping[str, str]  # part -> what is wrong, what to do

    @classmethod
    def of(
        cls,
        now: float,
        outbox: OutboxOverview,
        *,
        route_targets: Mapping[str, str],
        lanes: Sequence[LaneStatus],
        fixes: Mapping[str, str],
    ) -> StatusSnapshot:
        """Built from ``Outbox.overview``; ``route_targets`` maps route names to their
        target, ``fixes`` are the failing readiness checks and the warnings. Dead letters
        not redriven add a fix of their own."""
        stats = outbox.stats
        not_redriven = outbox.not_redriven_by_reason
        shown = dict(fixes)
        open_letters = sum(not_redriven.values())
        if open_letters:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(not_redriven.items()))
            shown["dead letters"] = (
                f"{open_letters} not redriven ({reasons}): `brew-bridge dlq list --config "
                "FILE` says why; fix the cause (config, trigger, data), then `brew-bridge dlq "
                "redrive --config FILE --reason REASON`."
            )
        return cls(
            taken_at=now,
            deliveries=dict(stats.deliveries),
            backlog=stats.backlog,
            oldest_pending_age=stats.oldest_pending_age,
            live_runs=stats.live_runs,
            runs_by_status=dict(sorted(stats.runs_by_status.items())),
            dead_letters=stats.dead_letters,
            dead_letters_by_reason=dict(sorted(outbox.dead_letters_by_reason.items())),
            not_redriven_by_reason=dict(sorted(not_redriven.items())),
            newest_dead_letters=tuple(
                DeadLetterLine.of(d, now, route_targets) for d in outbox.newest_dead_letters
            ),
            lanes=tuple(replace(lane, problem=_safe(lane.problem)) for lane in lanes),
            fixes={safe_text(k): safe_text(v) for k, v in shown.items()},
        )


def _safe(text: str | None) -> str | None:
    return None if text is None else safe_text(text)


# --- JSON -----------------------------------------------------------------------------------


def status_json(snap: StatusSnapshot) -> dict[str, Any]:
    """The snapshot as one JSON-ready object (``/status.json``), names as the CLI's JSON."""
    age = snap.oldest_pending_age
    return {
        "takenAt": iso_utc(snap.taken_at, timespec="seconds"),
        "outbox": {
            "deliveries": dict(snap.deliveries),
            "backlog": snap.backlog,
            "oldestPendingAgeSeconds": None if age is None else round(age, 3),
        },
        "runs": {"live": snap.live_runs, "byStatus": dict(snap.runs_by_status)},
        "deadLetters": {
            "total": snap.dead_letters,
            "byReason": dict(snap.dead_letters_by_reason),
            "notRedrivenByReason": dict(snap.not_redriven_by_reason),
            "newest": [
                {
                    "id": d.id,
                    "ageSeconds": round(d.age_seconds, 3),
                    "stage": d.stage,
                    "reason": d.reason,
                    "code": d.code,
                    "route": d.route,
                    "target": d.target,
                    "event": d.event,
                    "message": d.message,
                }
                for d in snap.newest_dead_letters
            ],
        },
        "targets": [
            {
                "target": lane.target,
                "title": lane.title,
                "circuit": lane.circuit,
                "problem": lane.problem,
                "budgets": [
                    {
                        "policy": b.policy,
                        "used": b.used,
                        "limit": b.limit,
                        "windowSeconds": b.window_seconds,
                    }
                    for b in lane.budgets
                ],
            }
            for lane in snap.lanes
        ],
        "fixes": dict(snap.fixes),
    }


# --- HTML -----------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .2rem}
.taken{color:#666;margin:0 0 1rem}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(22rem,1fr));gap:1rem}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8rem 1rem}
section.wide{grid-column:1/-1}
h2{font-size:1.05rem;margin:0 0 .5rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.2rem .5rem .2rem 0;border-bottom:1px solid #eee;
vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.big{font-size:1.6rem;font-weight:600}
.empty{color:#666;font-style:italic}
.ok{color:#17692a}.bad{color:#a8071a;font-weight:600}
td.event{font-family:monospace;font-size:.85em}
"""


def _text(value: object) -> str:
    """Any value as page text: masked and redacted again, then escaped."""
    return html.escape(safe_text("" if value is None else str(value)))


def _tr(*cells: str, attrs: str = "") -> str:
    return f"<tr{attrs}>{''.join(cells)}</tr>"


def _td(value: object, cls: str | None = None) -> str:
    return f"<td class='{cls}'>{_text(value)}</td>" if cls else f"<td>{_text(value)}</td>"


def _num(value: object) -> str:
    return _td(value, "n")


def _rows(pairs: Iterable[tuple[object, object]]) -> str:
    return "".join(_tr(_td(k), _num(v)) for k, v in pairs)


def _table(heads: Sequence[str], rows: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _big(value: int, words: str) -> str:
    """A panel's headline number."""
    return f"<p><span class='big'>{_text(value)}</span> {_text(words)}</p>"


def _empty(words: str) -> str:
    return f"<p class='empty'>{_text(words)}</p>"


def _outbox(s: StatusSnapshot) -> str:
    age = s.oldest_pending_age
    oldest = "none waiting" if age is None else format_duration(age)
    states = (
        _table(("state", "rows"), _rows(s.deliveries.items()))
        if any(s.deliveries.values())
        else _empty("no deliveries yet")
    )
    return (
        f"<p><span class='big' data-value='backlog'>{_text(s.backlog)}</span> waiting or "
        f"firing; oldest waiting: <b data-value='oldest-pending-age'>{_text(oldest)}</b></p>"
        + states
    )


def _target(lane: LaneStatus) -> str:
    return f" data-target='{_text(lane.target)}'"


def _used(b: BudgetLine) -> str:
    return f"{b.used} of {b.limit} in the last {format_duration(b.window_seconds)}"


def _budgets(s: StatusSnapshot) -> str:
    if not s.lanes:
        return _empty("no targets yet (starting)")
    rows = "".join(
        _tr(_td(lane.title), _td(b.policy), _num(_used(b)), attrs=_target(lane))
        for lane in s.lanes
        for b in lane.budgets
    )
    return _table(("target", "policy", "used"), rows)


def _runs(s: StatusSnapshot) -> str:
    if not s.runs_by_status:
        return _empty("no runs yet")
    return _big(s.live_runs, "live") + _table(("status", "runs"), _rows(s.runs_by_status.items()))


def _dead_letters(s: StatusSnapshot) -> str:
    if not s.dead_letters_by_reason:
        return _empty("no dead letters")
    rows = "".join(
        _tr(_td(reason), _num(n), _num(s.not_redriven_by_reason.get(reason, 0)))
        for reason, n in s.dead_letters_by_reason.items()
    )
    return _big(s.dead_letters, "in all") + _table(("reason", "all", "not redriven"), rows)


def _newest(s: StatusSnapshot) -> str:
    if not s.newest_dead_letters:
        return _empty("no dead letters")
    rows = "".join(
        _tr(
            _num(d.id),
            _td(format_duration(d.age_seconds)),
            _td(d.stage),
            _td(d.reason),
            _td(d.code),
            _td(d.route),
            _td(d.target),
            _td(d.event, "event"),
            _td(d.message),
            attrs=f" data-dead-letter='{d.id}'",
        )
        for d in s.newest_dead_letters
    )
    heads = ("id", "age", "stage", "reason", "code", "route", "target", "event", "message")
    return _table(heads, rows)


def _circuits(s: StatusSnapshot) -> str:
    if not s.lanes:
        return _empty("no targets yet (starting)")
    rows = "".join(
        _tr(
            _td(lane.title),
            _td(lane.circuit, "ok" if lane.circuit == "closed" else "bad"),
            _td(lane.problem or "firing and polling"),
            attrs=_target(lane),
        )
        for lane in s.lanes
    )
    return _table(("target", "circuit", "what it means"), rows)


def _fixes(s: StatusSnapshot) -> str:
    if not s.fixes:
        return "<p class='ok'>nothing to fix: every readiness check passes</p>"
    items = "".join(
        f"<li><b>{_text(part)}</b>: {_text(text)}</li>" for part, text in s.fixes.items()
    )
    return f"<ul>{items}</ul>"


_BODIES: dict[str, Callable[[StatusSnapshot], str]] = {
    "outbox": _outbox,
    "budgets": _budgets,
    "runs": _runs,
    "circuits": _circuits,
    "dead-letters": _dead_letters,
    "fixes": _fixes,
    "newest-dead-letters": _newest,
}
_WIDE = frozenset({"newest-dead-letters"})


def render_status(snap: StatusSnapshot) -> str:
    """The page: one ``<section id=… data-panel=…>`` per entry of :data:`PANELS`."""
    sections = "".join(
        f"<section id='{pid}' data-panel='{pid}'{' class=wide' if pid in _WIDE else ''}>"
        f"<h2>{html.escape(title)}</h2>{_BODIES[pid](snap)}</section>"
        for pid, title in PANELS.items()
    )
    taken = iso_utc(snap.taken_at, timespec="seconds")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{_REFRESH_SECONDS}'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>brew-bridge status</title><style>{_CSS}</style></head><body>"
        f"<h1>brew-bridge status</h1><p class='taken'>as of {taken}, refreshed every "
        f"{_REFRESH_SECONDS} s; <a href='/status.json'>JSON</a> · <a href='/metrics'>metrics</a>"
        f" · <a href='/readyz'>readiness</a></p><main>{sections}</main></body></html>"
    )


def status_routes(snapshot: Callable[[], Awaitable[StatusSnapshot]]) -> list[Route]:
    """``GET /`` (the page) and ``GET /status.json``, each from a fresh ``snapshot()``;
    503 with the reason when the outbox cannot be read."""

    def serve(
        answer: Callable[[StatusSnapshot], Response],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(_request: Request) -> Response:
            try:
                snap = await snapshot()
            except BridgeError as exc:
                text = f"status unavailable: {safe_text(str(exc))}"
                return PlainTextResponse(text, status_code=503)
            return answer(snap)

        return endpoint

    return [
        Route("/", serve(lambda snap: HTMLResponse(render_status(snap)))),
        Route("/status.json", serve(lambda snap: JSONResponse(status_json(snap)))),
    ]
