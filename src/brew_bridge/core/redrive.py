"""Redrive: send dead letters back through the pipeline with their original Idempotency-Key.

A dead letter is redriven by the stage it died in:

- ``ingest`` (invalid_json, no_route, mapping_error, payload_invalid, too_large): the
  stored original record goes through :func:`~brew_bridge.mapping.routing.route_record` again
  with the *current* config — so a mapping fixed in the config now maps — and the
  result is stored like any new event. The key is derived exactly as the first time.
- ``fire`` / ``run``: the delivery goes back to ``pending`` with the same key. Brew
  answers ``idempotent_replay`` (and starts nothing) if the first fire with that key is
  less than 24 h old; ``new_key=True`` derives a fresh key from the old one
  (:func:`redrive_key`) so a failed run really runs again.

Planning (:func:`plan_redrive`) is pure and is all a dry run does; :func:`apply_redrive`
writes the plan to the outbox. Both derive everything from the dead letter itself, so
re-running an interrupted redrive produces the same keys (nothing is sent twice).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from ..errors import StoreError
from ..events import NewDelivery, Reason, Routed
from ..mapping.keys import bound_key
from ..mapping.routing import CompiledRoutes, route_record
from ..store import DeadLetterRow, Outbox
from ..timefmt import iso_utc

__all__ = [
    "RedriveStep",
    "RedriveSummary",
    "apply_redrive",
    "plan_redrive",
    "redrive_key",
]

Action = Literal["reroute", "requeue", "skip"]

_REDRIVE_SUFFIX = re.compile(r"^(?P<base>.*):redrive-(?P<n>[0-9]+)$", re.DOTALL)


def redrive_key(key: str) -> str:
    """The key for the next ``--new-key`` redrive of an event fired with ``key``.

    ``k`` -> ``k:redrive-1`` -> ``k:redrive-2`` ...: deterministic (an interrupted
    redrive run again picks the same key) and never one already used for this event.
    Keys past Brew's 100 characters are hashed the same way routing hashes them.
    """
    match = _REDRIVE_SUFFIX.match(key)
    base, n = (match["base"], int(match["n"]) + 1) if match else (key, 1)
    return bound_key(f"{base}:redrive-{n}")


@dataclass(frozen=True)
class RedriveStep:
    """What a redrive does (or did, or would do) with one dead letter."""

    dead_letter_id: int
    stage: str
    reason: str
    route: str | None
    action: Action
    note: str  # what happens, or why it is skipped
    # skip only: a short category for the summary ("already_redriven", "still_fails", ...)
    skip: str | None = None
    keys: tuple[str, ...] = ()  # the keys the event will be fired with
    previous_key: str | None = None  # requeue: the key of the fire that failed
    delivery_id: int | None = None  # requeue
    # requeue: an earlier dead letter of the same fire (several runs failed) requeues it
    same_fire_as: int | None = None
    routed: Routed | None = None  # reroute: what goes to Outbox.store_batch


@dataclass(frozen=True)
class RedriveSummary:
    """The outcome of a redrive, step by step."""

    steps: tuple[RedriveStep, ...]
    dry_run: bool

    @property
    def redriven(self) -> int:
        return sum(1 for s in self.steps if s.action != "skip")

    @property
    def skipped(self) -> int:
        return sum(1 for s in self.steps if s.action == "skip")

    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(s.skip or "other" for s in self.steps if s.action == "skip"))

    def lines(self) -> list[str]:
        """Human-readable report: one line per dead letter, then the totals."""
        out = []
        for s in self.steps:
            keys = f" key={','.join(s.keys)}" if s.keys else ""
            out.append(f"#{s.dead_letter_id} {s.stage}/{s.reason}: {s.action}{keys} - {s.note}")
        verb = "would redrive" if self.dry_run else "redriven"
        total = f"{self.redriven} {verb}, {self.skipped} skipped"
        if self.skipped:
            total += " (" + ", ".join(f"{n} {k}" for k, n in sorted(self.skip_counts().items()))
            total += ")"
        out.append(total + (" [dry run: nothing changed]" if self.dry_run else ""))
        return out


def _skip(dl: DeadLetterRow, category: str, note: str) -> RedriveStep:
    return RedriveStep(
        dead_letter_id=dl.id,
        stage=dl.stage,
        reason=dl.reason,
        route=dl.route,
        action="skip",
        note=note,
        skip=category,
    )


def _plan_ingest(dl: DeadLetterRow, routes: CompiledRoutes | None, new_key: bool) -> RedriveStep:
    if dl.record is None:
        return _skip(dl, "no_record", "the original record was not stored; nothing to re-route")
    if routes is None:
        return _skip(dl, "needs_config", "re-routing an ingest dead letter needs --config")
    routed = route_record(dl.record, routes)
    if dl.route is None:
        # The event reached no route at all the first time: the whole routing result is new.
        deliveries, dead = routed.deliveries, routed.dead_letters
        relevant_dead = dead if not deliveries else ()
    else:
        # Only this route failed; other routes of the same event are already in the outbox.
        deliveries = tuple(d for d in routed.deliveries if d.route == dl.route)
        relevant_dead = tuple(d for d in routed.dead_letters if d.route == dl.route)
        dead = ()
    if relevant_dead:
        first = relevant_dead[0]
        return _skip(dl, "still_fails", f"still fails: {first.reason}: {first.message}")
    if not deliveries:
        if routed.dropped:
            return _skip(dl, "no_match", "no route matches and no_route is 'drop'")
        where = f"route {dl.route!r}" if dl.route is not None else "any route"
        return _skip(dl, "no_match", f"the record no longer matches {where}")
    if new_key:
        deliveries = tuple(_with_key(d, redrive_key(d.idempotency_key)) for d in deliveries)
    routes_note = ", ".join(sorted({d.route for d in deliveries}))
    return RedriveStep(
        dead_letter_id=dl.id,
        stage=dl.stage,
        reason=dl.reason,
        route=dl.route,
        action="reroute",
        note=f"re-route to {routes_note}",
        keys=tuple(d.idempotency_key for d in deliveries),
        routed=Routed(record=dl.record, deliveries=deliveries, dead_letters=dead),
    )


def _with_key(delivery: NewDelivery, key: str) -> NewDelivery:
    return replace(delivery, idempotency_key=key)


def _plan_requeue(dl: DeadLetterRow, new_key: bool) -> RedriveStep:
    if dl.delivery_id is None:
        return _skip(dl, "no_delivery", "no delivery row to requeue")
    if dl.idempotency_key is None:
        return _skip(dl, "no_key", "the dead letter has no idempotency key")
    key = redrive_key(dl.idempotency_key) if new_key else dl.idempotency_key
    note = (
        "requeue with a new key: the target runs it again"
        if new_key
        else "requeue with the same key: the target replays the original fire if it was < 24 h ago"
        " (--new-key runs it again)"
    )
    return RedriveStep(
        dead_letter_id=dl.id,
        stage=dl.stage,
        reason=dl.reason,
        route=dl.route,
        action="requeue",
        note=note,
        keys=(key,),
        previous_key=dl.idempotency_key,
        delivery_id=dl.delivery_id,
    )


def _refusal(
    dl: DeadLetterRow, runs_by_delivery: Mapping[int, Mapping[str, int]] | None, new_key: bool
) -> tuple[str, str] | None:
    """Why firing this dead letter again (under a new key, or at all) could send what was
    already sent, as (skip category, note); None when it cannot."""
    if dl.reason == Reason.OUTCOME_UNKNOWN:
        # Whatever the key: the target forgot it (a late fire) or never takes one (Pinkfish).
        return (
            "outcome_unknown",
            "its fire got no answer and the target cannot tell whether it acted on it (its "
            "key is forgotten, or it takes none): firing again may send it twice; look at the "
            "target first (its runs of this event), then --force to send it anyway",
        )
    if not new_key:
        return None
    if dl.stage == "run":
        runs = (runs_by_delivery or {}).get(dl.delivery_id or -1, {})
        started = ", ".join(f"{n} {status}" for status, n in sorted(runs.items()))
        return (
            "reruns_every_automation",
            f"--new-key fires route {dl.route}'s trigger again: every published automation "
            "of it runs again, not only the one that failed"
            + (f" (this fire started {started})" if started else "")
            + "; --force to send it anyway",
        )
    if dl.reason == Reason.RETRIES_EXHAUSTED:
        return (
            "may_send_twice",
            "its attempts got no clear answer (timeouts, resets, 5xx): the target may have "
            "accepted one, and a new key would send it twice; redrive without --new-key "
            "(the original key is replayed if < 24 h old), or --force",
        )
    return None


def plan_redrive(
    dead_letters: Sequence[DeadLetterRow],
    *,
    routes: CompiledRoutes | None,
    new_key: bool = False,
    force: bool = False,
    runs_by_delivery: Mapping[int, Mapping[str, int]] | None = None,
) -> list[RedriveStep]:
    """Decide what to do with each dead letter, oldest first. Pure: no I/O.

    ``routes`` (compiled from the current config) is needed for ingest dead letters
    only; without it they are skipped. A dead letter already redriven is skipped
    unless ``force``; so is a ``new_key`` redrive that could send again what was sent
    (a run dead letter re-fires its whole trigger; a fire that ran out of retries may
    have been accepted), and any redrive of an ``outcome_unknown`` fire (the target
    cannot replay it). ``runs_by_delivery`` (run counts by status per delivery) says
    what a re-fired trigger started the first time.
    """
    steps = []
    first_of_fire: dict[int, int] = {}  # delivery id -> the first dead letter requeueing it
    for dl in sorted(dead_letters, key=lambda d: d.id):
        if dl.redriven_at is not None and not force:
            steps.append(
                _skip(
                    dl,
                    "already_redriven",
                    f"already redriven at {iso_utc(dl.redriven_at, timespec='seconds')} "
                    "(--force to redrive again)",
                )
            )
        elif dl.stage == "ingest":
            steps.append(_plan_ingest(dl, routes, new_key))
        elif not force and (refusal := _refusal(dl, runs_by_delivery, new_key)):
            steps.append(_skip(dl, *refusal))
        else:
            step = _plan_requeue(dl, new_key)
            if step.delivery_id is not None:
                first = first_of_fire.setdefault(step.delivery_id, dl.id)
                if first != dl.id:
                    step = replace(
                        step, same_fire_as=first, note=f"same fire as dead letter #{first}"
                    )
            steps.append(step)
    return steps


def apply_redrive(outbox: Outbox, steps: Sequence[RedriveStep], now: float) -> RedriveSummary:
    """Carry out a plan: store re-routed events, requeue deliveries, mark dead letters redriven.

    A step the outbox refuses (e.g. the new key already exists for the route) becomes a
    skip with the outbox's message; the other steps go on.
    """
    done: list[RedriveStep] = []
    requeued: set[int] = set()  # dead letters whose requeue went through
    for step in steps:
        try:
            done.append(_apply_one(outbox, step, requeued, now))
        except StoreError as exc:
            done.append(replace(step, action="skip", skip="outbox_refused", note=str(exc)))
    return RedriveSummary(steps=tuple(done), dry_run=False)


def _apply_one(outbox: Outbox, step: RedriveStep, requeued: set[int], now: float) -> RedriveStep:
    if step.action == "skip":
        return step
    if step.action == "reroute":
        assert step.routed is not None  # set by _plan_ingest for every reroute
        result = outbox.store_batch([step.routed], now)
        if result.inserted == 0 and result.duplicates:
            # Already there: an earlier, interrupted redrive or a re-delivery stored it.
            step = replace(step, note=f"{step.note} (already in the outbox)")
    elif step.same_fire_as is not None:
        if step.same_fire_as not in requeued:
            return replace(
                step,
                action="skip",
                skip="outbox_refused",
                note=f"the requeue of dead letter #{step.same_fire_as} did not go through",
            )
    else:
        assert step.delivery_id is not None  # set by _plan_requeue for every requeue
        same_key = step.keys[0] == step.previous_key
        delivery_id = outbox.requeue_delivery(
            step.delivery_id, new_key=None if same_key else step.keys[0], now=now
        )
        requeued.add(step.dead_letter_id)
        step = replace(step, delivery_id=delivery_id)
        row = outbox.delivery(delivery_id)
        if row is not None and row.state != "pending":
            # The outbox leaves a queued row alone, and a new key already used (an
            # interrupted redrive run again, or --force) keeps its row as it is.
            step = replace(step, note=f"delivery #{delivery_id} is already {row.state}")
        elif not same_key:
            step = replace(step, note=f"queued as delivery #{delivery_id} with a new key")
    outbox.mark_redriven(step.dead_letter_id, now)
    return step
