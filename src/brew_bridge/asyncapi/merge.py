"""Several one-broker AsyncAPI 3.0 documents as one.

FastStream can describe several brokers in one document, but it names their servers
``Server1``, ``Server2``... by position and, where two brokers give a channel, an
operation or a message the same key, keeps the last with only a warning. Here each part
(one queue source, or the Kafka topics) is generated alone and merged: its servers are
named after it, its channels get the keys we choose, a component that collides with a
different one is renamed, and every ``$ref`` follows its target. Servers show no user,
no password and no query (:func:`~brew_bridge.config.queues.redacted_url`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from brew_bridge.config.queues import redacted_url

__all__ = ["Part", "merge_documents"]

Document = dict[str, Any]
_COMPONENTS = ("messages", "schemas", "securitySchemes")


@dataclass(frozen=True)
class Part:
    """One broker's document and what the merged one calls its things.

    ``name`` names its servers; ``channels`` maps FastStream's channel keys to ours (a
    key not listed is kept); ``descriptions`` (by our key) describe the channels and
    their operations.
    """

    name: str
    document: Mapping[str, Any]
    channels: Mapping[str, str] = field(default_factory=dict)
    descriptions: Mapping[str, str] = field(default_factory=dict)


def merge_documents(parts: Sequence[Part], info: Mapping[str, Any]) -> Document:
    """One AsyncAPI 3.0 document with every part's servers, channels and operations."""
    merged: Document = {
        "asyncapi": "3.0.0",
        "info": dict(info),
        "defaultContentType": "application/json",
        "servers": {},
        "channels": {},
        "operations": {},
        "components": {},
    }
    for part in parts:
        _add(merged, part)
    for section in ("servers", "channels", "operations", "components"):
        if not merged[section]:
            del merged[section]
    return merged


def _add(merged: Document, part: Part) -> None:
    doc = copy.deepcopy(dict(part.document))
    refs: dict[str, str] = {}  # old $ref -> new $ref

    servers: dict[str, Any] = doc.get("servers") or {}
    for index, (key, server) in enumerate(servers.items(), 1):
        server = _without_credentials(server)
        same = next((k for k, s in merged["servers"].items() if s == server), None)
        new = same or (part.name if len(servers) == 1 else f"{part.name}-{index}")
        merged["servers"][new] = server
        refs[f"#/servers/{key}"] = f"#/servers/{new}"

    channels: dict[str, Any] = doc.get("channels") or {}
    renamed_channels: dict[str, str] = {}
    taken = set(merged["channels"])
    for key in channels:
        new = _unique(part.channels.get(key, key), taken, part.name)
        taken.add(new)
        renamed_channels[key] = new
        refs[f"#/channels/{key}"] = f"#/channels/{new}"

    operations: dict[str, Any] = doc.get("operations") or {}
    renamed_operations: dict[str, str] = {}
    taken = set(merged["operations"])
    for key, operation in operations.items():
        old_channel = str(operation.get("channel", {}).get("$ref", "")).removeprefix("#/channels/")
        # An operation is named after its channel (one subscriber, one channel).
        wanted = renamed_channels.get(old_channel, key)
        new = _unique(wanted, taken, part.name)
        taken.add(new)
        renamed_operations[key] = new
        refs[f"#/operations/{key}"] = f"#/operations/{new}"

    components: dict[str, Any] = doc.get("components") or {}
    # A component differing from the one of its key is renamed; one that refers to a
    # renamed one then differs too: repeat until nothing more is renamed.
    renamed = True
    while renamed:
        renamed = False
        for section in _COMPONENTS:
            have: dict[str, Any] = merged["components"].get(section, {})
            for key, value in (components.get(section) or {}).items():
                old = f"#/components/{section}/{key}"
                if old not in refs and key in have and have[key] != _rewritten(value, refs):
                    new = _unique(f"{part.name}.{key}", have, part.name)
                    refs[old] = f"#/components/{section}/{new}"
                    renamed = True

    for key, channel in channels.items():
        new = renamed_channels[key]
        channel = _rewritten(channel, refs)
        _describe(channel, part.descriptions.get(new))
        merged["channels"][new] = channel
    for key, operation in operations.items():
        operation = _rewritten(operation, refs)
        channel_key = str(operation.get("channel", {}).get("$ref", "")).removeprefix("#/channels/")
        _describe(operation, part.descriptions.get(channel_key))
        merged["operations"][renamed_operations[key]] = operation
    for section in _COMPONENTS:
        for key, value in (components.get(section) or {}).items():
            target = refs.get(f"#/components/{section}/{key}", f"#/components/{section}/{key}")
            new = target.rpartition("/")[2]
            merged["components"].setdefault(section, {})[new] = _rewritten(value, refs)


def _unique(wanted: str, taken: Mapping[str, Any] | set[str], prefix: str) -> str:
    """``wanted``, or (taken) prefixed with the part's name, then numbered."""
    if wanted not in taken:
        return wanted
    candidate = f"{prefix}.{wanted}"
    number = 2
    while candidate in taken:
        candidate = f"{prefix}.{wanted}.{number}"
        number += 1
    return candidate


def _describe(item: dict[str, Any], description: str | None) -> None:
    if description:
        item["description"] = description


def _rewritten(value: Any, refs: Mapping[str, str]) -> Any:
    """``value`` with every ``$ref`` (or a path under one) pointing where ``refs`` says."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                out[key] = _moved(item, refs)
            else:
                out[key] = _rewritten(item, refs)
        return out
    if isinstance(value, list):
        return [_rewritten(item, refs) for item in value]
    return value


def _moved(ref: str, refs: Mapping[str, str]) -> str:
    for old, new in refs.items():
        if ref == old or ref.startswith(old + "/"):
            return new + ref[len(old) :]
    return ref


def _without_credentials(server: Mapping[str, Any]) -> dict[str, Any]:
    """The server with no user, password or query in its host and path."""
    server = dict(server)
    protocol = str(server.get("protocol") or "x")
    host = str(server.get("host", ""))
    pathname = str(server.get("pathname") or "")
    shown = urlsplit(redacted_url(f"{protocol}://{host}{pathname}"))
    server["host"] = shown.netloc
    if "pathname" in server:
        server["pathname"] = shown.path
    return server
