"""``brew-bridge check --online``: would every route work against the live targets?

Runs after the offline check passed, and only reads (nothing is ever fired):

* **Brew**, for every trigger a route fires: the ready check (9.3 ``GET …/triggers/{id}/fire``,
  10.x ``GET …/triggers/{id}/readiness``; ``brew.api_shape`` as the worker uses it, so
  ``auto`` detects the generation), then the trigger's detail, whose live
  ``payloadSchema`` is compared field by field with ``triggers.<id>.payload_schema``;
  with samples (``--sample FILE``, ``--samples MANIFEST``), each route's mapped payload
  is checked against the LIVE schema. Two reads per trigger, paced by the config's
  ``brew.rate_limits.trigger_read`` budget.
* **Boring Marketing**: one ``GET /brands/{brand}/runs`` for the target's ``brand_id``
  proves the key and the brand.
* **Pinkfish**: not pre-flightable (no read endpoint that does not need a run).

Every problem is one line, ``subject: what is wrong (fix: what to do)``. The pure parts
(:func:`schema_diff`, :func:`readiness_problems`, :func:`sample_problems`,
:func:`exit_code`) take no I/O and are unit-tested; :func:`preflight` does the reads.

Exit codes (see :data:`EXIT_OK` …): 0 every route would work, 3 at least one would fail,
4 a target could not be checked (key refused or missing, target unreachable, rate
limited). 2 stays "the config is invalid" (the offline check).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from brew_bridge.config import BridgeConfig
from brew_bridge.config.targets import BoringMarketingConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import ApiError, AuthError, ConfigError, RateLimited, TransportError
from brew_bridge.events import SourceRecord
from brew_bridge.mapping.routing import CompiledRoutes, route_record
from brew_bridge.sources.webhooks import build_scheme, parse_saved_delivery, webhook_record
from brew_bridge.wire.payload_schema import check_payload

__all__ = [
    "EXIT_CANNOT_CHECK",
    "EXIT_OK",
    "EXIT_WOULD_FAIL",
    "FieldDiff",
    "Problem",
    "Report",
    "Sample",
    "exit_code",
    "load_samples",
    "preflight",
    "readiness_problems",
    "sample_problems",
    "schema_diff",
]

EXIT_OK = 0
EXIT_WOULD_FAIL = 3
EXIT_CANNOT_CHECK = 4

Severity = Literal["fail", "warn", "cannot_check"]


@dataclass(frozen=True)
class Problem:
    """One line of the report: ``subject: message (fix: fix)``."""

    subject: str
    message: str
    fix: str
    severity: Severity = "fail"

    def line(self) -> str:
        tag = "WARNING: " if self.severity == "warn" else ""
        return f"{tag}{self.subject}: {self.message} (fix: {self.fix})"


@dataclass
class Report:
    """What the online check found: problems, and lines about what is fine."""

    ok_lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [*self.ok_lines, *(p.line() for p in self.problems)]


def exit_code(problems: Iterable[Problem]) -> int:
    """4 when something could not be checked, else 3 when a route would fail, else 0."""
    severities = {p.severity for p in problems}
    if "cannot_check" in severities:
        return EXIT_CANNOT_CHECK
    return EXIT_WOULD_FAIL if "fail" in severities else EXIT_OK


# -- pure: the schema diff --------------------------------------------------------------


@dataclass(frozen=True)
class FieldDiff:
    """One field where the config's payloadSchema and the live one differ.

    ``kind``: ``missing`` (the live schema declares it, the config does not), ``extra``
    (the config declares it, the live schema does not), ``type`` or ``required``.
    ``fails``: fires or the bridge's own check would go wrong because of it (a field
    Brew requires that the config does not, a type that differs); the rest only warn.
    """

    field: str
    kind: Literal["missing", "extra", "type", "required"]
    config: Any
    live: Any
    fails: bool

    def message(self) -> str:
        if self.kind == "missing":
            need = "required" if self.live else "optional"
            return f"field {self.field} ({need}) is in the live payloadSchema, not in the config"
        if self.kind == "extra":
            return f"field {self.field} is in the config's payload_schema, not in the live one"
        if self.kind == "type":
            return f"field {self.field} is {self.config} in the config, {self.live} live"
        config = "required" if self.config else "optional"
        live = "required" if self.live else "optional"
        return f"field {self.field} is {config} in the config, {live} live"


def _fields(level: object) -> dict[str, Mapping[str, Any]]:
    if not isinstance(level, list):
        return {}
    return {f["key"]: f for f in level if isinstance(f, Mapping) and isinstance(f.get("key"), str)}


def _diff_level(config: object, live: object, prefix: str, out: list[FieldDiff]) -> None:
    mine, theirs = _fields(config), _fields(live)
    for key, spec in theirs.items():
        path = f"{prefix}{key}"
        required = spec.get("required") is True
        if key not in mine:
            no_fallback = "fallbackValue" not in spec
            out.append(FieldDiff(path, "missing", None, required, fails=required and no_fallback))
            continue
        own = mine[key]
        if own.get("type") != spec.get("type"):
            out.append(FieldDiff(path, "type", own.get("type"), spec.get("type"), fails=True))
            continue
        if own.get("itemType") != spec.get("itemType"):
            own_items, live_items = own.get("itemType"), spec.get("itemType")
            out.append(
                FieldDiff(path, "type", f"array of {own_items}", f"array of {live_items}", True)
            )
        own_required = own.get("required") is True
        if own_required != required:
            # Brew requiring what the config lets the mapping leave out: fires refused.
            fails = required and "fallbackValue" not in spec
            out.append(FieldDiff(path, "required", own_required, required, fails=fails))
        if "children" in spec or "children" in own:
            child = f"{path}[]." if spec.get("type") == "array" else f"{path}."
            _diff_level(own.get("children"), spec.get("children"), child, out)
    for key in mine:
        if key not in theirs:
            out.append(FieldDiff(f"{prefix}{key}", "extra", True, None, fails=False))


def schema_diff(config: Mapping[str, Any], live: Mapping[str, Any]) -> list[FieldDiff]:
    """Every field where ``config`` (``triggers.<id>.payload_schema``) and ``live`` (the
    trigger's ``payloadSchema`` from Brew) differ, nested fields included."""
    out: list[FieldDiff] = []
    _diff_level(config.get("fields"), live.get("fields"), "", out)
    return out


# -- pure: verdicts ------------------------------------------------------------------------

_NO_PUBLISHED = "NO_PUBLISHED_AUTOMATION"


def readiness_problems(trigger: str, readiness: Mapping[str, Any], routes: str) -> list[Problem]:
    """What the ready check (9.3, with ``ready`` added) or readiness (10.x) body says is
    wrong with ``trigger`` (fired by ``routes``); empty when it is ready."""
    subject = f"trigger {trigger} (routes {routes})"
    publish = (
        f"publish an automation attached to {trigger} in Brew (until then every fire is "
        "refused with 422 NO_PUBLISHED_AUTOMATION)"
    )
    blockers = readiness.get("blockers")
    problems: list[Problem] = []
    if isinstance(blockers, list):
        for blocker in blockers:
            if not isinstance(blocker, Mapping):
                continue
            code = str(blocker.get("code") or "BLOCKED")
            text = str(blocker.get("message") or "not ready")
            if code == _NO_PUBLISHED:
                problems.append(Problem(subject, f"no published automation ({code})", publish))
            else:
                problems.append(Problem(subject, f"{code}: {text}", "resolve it in Brew"))
    if readiness.get("ready") is True:
        return problems
    if not problems:
        details = readiness.get("details")
        counts = readiness.get("counts")
        if not isinstance(counts, Mapping) and isinstance(details, Mapping):
            counts = details.get("counts")
        published = counts.get("automations") if isinstance(counts, Mapping) else None
        if published == 0 or published is None:
            problems.append(Problem(subject, "no published automation", publish))
        else:
            status = readiness.get("code") or readiness.get("status") or "not ready"
            problems.append(Problem(subject, f"not ready ({status})", "resolve it in Brew"))
    return problems


def sample_problems(
    route: str,
    trigger: str,
    sample: str,
    payload: Mapping[str, Any],
    live_schema: Mapping[str, Any],
) -> list[Problem]:
    """The errors the LIVE schema finds in ``route``'s payload mapped from ``sample``."""
    verdict = check_payload(dict(payload), live_schema)
    subject = f"route {route} -> {trigger} (sample {sample})"
    return [
        Problem(
            subject,
            f"Brew would refuse the payload: {issue.code} {issue.field or '(payload)'}: "
            f"{issue.message}",
            f"map {issue.field} as the live payloadSchema of {trigger} says, and copy that "
            f"schema into triggers.{trigger}.payload_schema",
        )
        for issue in verdict.errors
    ]


# -- samples --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One sample event and how it arrives (``any_topic``: tried on every route)."""

    label: str
    record: SourceRecord
    any_topic: bool


def _webhook_sample(config: BridgeConfig, name: str | None, data: bytes) -> SourceRecord:
    saved = parse_saved_delivery(data)
    source_name = name or saved.source
    if source_name is None:
        raise ValueError("no request line (POST /webhooks/NAME) and no webhook: given")
    source = config.webhooks.sources.get(source_name)
    if source is None:
        raise ValueError(f"no webhook source {source_name!r} in the config")
    headers = {key.lower(): value for key, value in saved.headers}
    record, _ = webhook_record(source_name, build_scheme(source), headers, saved.body, 0.0)
    return record


def _file_sample(config: BridgeConfig, path: Path) -> Sample:
    data = path.read_bytes()
    if path.suffix == ".http":
        return Sample(str(path), _webhook_sample(config, None, data), any_topic=False)
    record = SourceRecord(
        source="kafka", stream="", position="0:0", key=None, value=data, headers=()
    )
    return Sample(str(path), record, any_topic=True)


def _header_values(headers: object) -> tuple[tuple[str, bytes], ...]:
    if not isinstance(headers, Mapping):
        return ()
    out: list[tuple[str, bytes]] = []
    for name, value in headers.items():
        for one in value if isinstance(value, list) else [value]:
            out.append((str(name), str(one).encode("utf-8")))
    return tuple(out)


def load_samples(
    config: BridgeConfig, files: Sequence[Path], manifests: Sequence[Path]
) -> tuple[list[Sample], list[str]]:
    """The samples to map, and a line for each one left out (unreadable, or a manifest
    entry with its own ``env``, which changes the config)."""
    samples: list[Sample] = []
    skipped: list[str] = []
    for path in files:
        try:
            samples.append(_file_sample(config, path))
        except (OSError, ValueError) as exc:
            skipped.append(f"sample {path}: left out: {exc}")
    for manifest in manifests:
        try:
            entries = yaml.safe_load(manifest.read_text(encoding="utf-8"))["samples"]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            skipped.append(f"samples {manifest}: left out: cannot read the manifest ({exc})")
            continue
        for entry in entries:
            label = str(manifest.parent / str(entry.get("file")))
            if entry.get("env"):
                skipped.append(f"sample {label}: left out: it needs its own env")
                continue
            try:
                data = (manifest.parent / str(entry["file"])).read_bytes()
                if entry.get("webhook"):
                    record = _webhook_sample(config, str(entry["webhook"]), data)
                    samples.append(Sample(label, record, any_topic=False))
                    continue
                key = entry.get("key")
                record = SourceRecord(
                    source="kafka",
                    stream=str(entry.get("topic") or ""),
                    position="0:0",
                    key=str(key).encode("utf-8") if key is not None else None,
                    value=data,
                    headers=_header_values(entry.get("headers")),
                )
                samples.append(Sample(label, record, any_topic=not entry.get("topic")))
            except (OSError, ValueError, KeyError) as exc:
                skipped.append(f"sample {label}: left out: {exc}")
    return samples, skipped


def mapped_payloads(
    samples: Sequence[Sample], routes: CompiledRoutes
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per route: ``(sample label, mapped payload)`` of every sample it delivers."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for sample in samples:
        routed = route_record(sample.record, routes, any_topic=sample.any_topic)
        for delivery in routed.deliveries:
            out.setdefault(delivery.route, []).append((sample.label, delivery.payload))
    return out


# -- the reads --------------------------------------------------------------------------------


def _refused(target: str, exc: ApiError, fix: str) -> Problem:
    return Problem(f"target {target}", f"the API key was refused ({exc})", fix, "cannot_check")


def _unreachable(target: str, url: str, exc: Exception, fix: str) -> Problem:
    return Problem(f"target {target}", f"cannot reach {url} ({exc})", fix, "cannot_check")


def _rate_limited(target: str, exc: ApiError) -> Problem:
    return Problem(
        f"target {target}",
        f"rate limited ({exc})",
        "run the check again later, or raise the rate_limits if the plan allows",
        "cannot_check",
    )


class _Stop(Exception):
    """A target answered in a way that makes every further read pointless."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


async def _brew(
    config: BridgeConfig,
    routes: CompiledRoutes,
    payloads: Mapping[str, list[tuple[str, dict[str, Any]]]],
    api_key: Callable[[], str],
    report: Report,
) -> None:
    from brew_bridge.targets.brew.client import BrewClient, build_http_client

    brew_routes: dict[str, list[str]] = {}
    for route in routes.routes:
        if route.target == "brew":
            brew_routes.setdefault(route.action, []).append(route.name)
    if not brew_routes:
        return
    key_fix = (
        "put a valid Brew API key (scope automations) in BREW_API_KEY or the file "
        "brew.api_key_file names; an organization key needs brew.brand_id"
    )
    url_fix = "check brew.base_url and that Brew is reachable from here"
    budgets = RateBudgets(
        config.brew.rate_limits,
        target="brew",
        retry_after_cap=config.brew.retry.retry_after_cap_seconds,
    )
    async with build_http_client(config.brew) as http:
        client = BrewClient(
            http,
            api_key=api_key,
            brand_id=config.brew.brand_id,
            budgets=budgets,
            api_shape=config.brew.api_shape,
        )

        async def read(call: Any, trigger: str) -> Any:
            try:
                return await call(trigger)
            except AuthError as exc:
                raise _Stop(_refused("brew", exc, key_fix)) from exc
            except RateLimited as exc:
                raise _Stop(_rate_limited("brew", exc)) from exc
            except TransportError as exc:
                raise _Stop(_unreachable("brew", config.brew.base_url, exc, url_fix)) from exc

        try:
            for trigger, names in sorted(brew_routes.items()):
                subject = f"trigger {trigger} (routes {', '.join(names)})"
                try:
                    readiness = await read(client.check_ready, trigger)
                    row = await read(client.get_trigger, trigger)
                except ApiError as exc:
                    fix = (
                        f"create {trigger} in Brew, or fix the trigger: of routes "
                        f"{', '.join(names)}"
                        if exc.status == 404
                        else "see the message"
                    )
                    report.problems.append(Problem(subject, f"Brew answered {exc}", fix))
                    continue
                found = readiness_problems(trigger, readiness, ", ".join(names))
                live = row.get("payloadSchema")
                declared = config.triggers[trigger].payload_schema
                schema_fix = (
                    f"copy the live payloadSchema of {trigger} into "
                    f"triggers.{trigger}.payload_schema"
                )
                if isinstance(live, Mapping):
                    for diff in schema_diff(declared, live):
                        severity: Severity = "fail" if diff.fails else "warn"
                        found.append(Problem(subject, diff.message(), schema_fix, severity))
                    for name in names:
                        for label, payload in payloads.get(name, []):
                            found.extend(sample_problems(name, trigger, label, payload, live))
                else:
                    found.append(Problem(subject, "Brew sent no payloadSchema", "see Brew"))
                report.problems.extend(found)
                if not any(p.severity == "fail" for p in found):
                    checked = sum(len(payloads.get(n, [])) for n in names)
                    samples = f", {checked} mapped samples fit" if checked else ""
                    report.ok_lines.append(
                        f"trigger {trigger} (routes {', '.join(names)}): ready"
                        f" (API {client.api_shape}{samples})"
                    )
        except _Stop as stop:
            report.problems.append(stop.problem)


async def _boring_marketing(
    name: str, section: BoringMarketingConfig, api_key: Callable[[], str], report: Report
) -> None:
    from brew_bridge.targets.boring_marketing.client import BoringMarketingClient
    from brew_bridge.targets.http import build_http_client

    if section.brand_id is None:
        report.ok_lines.append(
            f"target {name} (boring_marketing): not checked: no targets.{name}.brand_id "
            "(each payload names its brand)"
        )
        return
    budgets = RateBudgets(
        section.rate_limits, target=name, retry_after_cap=section.retry.retry_after_cap_seconds
    )
    async with build_http_client(
        section.base_url,
        timeout=section.timeout_seconds,
        connect_timeout=section.connect_timeout_seconds,
        max_connections=section.max_connections,
    ) as http:
        client = BoringMarketingClient(http, target=name, api_key=api_key, budgets=budgets)
        subject = f"target {name} (boring_marketing)"
        try:
            await client.list_runs(section.brand_id)
        except AuthError as exc:
            fix = f"put a valid key in {section.api_key_env} or targets.{name}.api_key_file"
            report.problems.append(_refused(name, exc, fix))
        except RateLimited as exc:
            report.problems.append(_rate_limited(name, exc))
        except TransportError as exc:
            fix = f"check targets.{name}.base_url and that it is reachable from here"
            report.problems.append(_unreachable(name, section.base_url, exc, fix))
        except ApiError as exc:
            brand_fix = f"fix targets.{name}.brand_id, or use a key of the account owning the brand"
            report.problems.append(Problem(subject, f"brand {section.brand_id}: {exc}", brand_fix))
        else:
            report.ok_lines.append(f"{subject}: key and brand {section.brand_id} accepted")


async def preflight(
    config: BridgeConfig,
    routes: CompiledRoutes,
    samples: Sequence[Sample] = (),
    env: Mapping[str, str] | None = None,
) -> Report:
    """Read every target the routes use and say what would fail (see the module)."""
    from brew_bridge.targets.registry import api_key

    report = Report()
    payloads = mapped_payloads(samples, routes)
    used = {route.target for route in routes.routes}
    for name in sorted(used):
        kind = config.target_kinds[name]
        if kind == "pinkfish":
            report.ok_lines.append(
                f"target {name} (pinkfish): not pre-flightable: no read endpoint"
            )
            continue
        try:
            key = api_key(config, name, env)
        except ConfigError as exc:
            for problem in exc.problems:
                report.problems.append(
                    Problem(f"target {name}", problem.message, problem.fix, "cannot_check")
                )
            continue
        if kind == "brew":
            await _brew(config, routes, payloads, key, report)
        elif kind == "boring_marketing":
            section = config.targets[name]
            assert isinstance(section, BoringMarketingConfig)
            await _boring_marketing(name, section, key, report)
    return report


def run_preflight(
    config: BridgeConfig, routes: CompiledRoutes, samples: Sequence[Sample] = ()
) -> Report:
    """:func:`preflight` on its own event loop (for the CLI)."""
    return asyncio.run(preflight(config, routes, samples))
