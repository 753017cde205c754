"""One plugin per queue kind for ``bench/ingest.py --source <kind>``.

A plugin is the module ``bench/ingest_kinds/<kind>.py`` (the kind as ``sources:`` names
it) with::

    KIND = "<kind>"
    async def publish(settings: dict, values: list[bytes]) -> None
        # put values on the source's stream, in order
    def source_settings(uid: str) -> dict
        # the sources.<kind>.<name> entry for a fresh stream named by uid
    async def bare_loop(settings: dict, expect: int, batch: int, db: str) -> dict
        # receive (batches of `batch`) + json.loads + one executemany per batch into
        # SQLite (WAL, synchronous=FULL; table events(id TEXT PRIMARY KEY, body BLOB)) +
        # ack after the commit, until `expect` are handled; {"seconds", "cpu", "records"}
    async def cleanup(settings: dict) -> None
        # delete the stream

The bench loads a plugin by name only when its kind is asked for, so a kind whose
plugin has not landed yet fails with a message saying which file is missing.
"""

from __future__ import annotations

import importlib
import resource
from types import ModuleType

__all__ = ["QUEUE_KINDS", "cpu_seconds", "load"]

QUEUE_KINDS = ("rabbit", "nats", "redis")
# What the bench calls (KIND only names the module's kind: not required).
_NEEDED = ("publish", "source_settings", "bare_loop", "cleanup")


def load(kind: str) -> ModuleType:
    """The plugin of ``kind``; SystemExit naming the missing file or function."""
    name = f"{__name__}.{kind}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # the plugin is there; something it imports is not
        raise SystemExit(
            f"--source {kind}: no benchmark plugin bench/ingest_kinds/{kind}.py; it comes "
            f"with the {kind} source (see bench/ingest_kinds/__init__.py for what it holds)"
        ) from None
    missing = [attr for attr in _NEEDED if not hasattr(module, attr)]
    if missing:
        raise SystemExit(
            f"--source {kind}: bench/ingest_kinds/{kind}.py lacks {', '.join(missing)} "
            "(see bench/ingest_kinds/__init__.py for the interface)"
        )
    return module


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads (for the plugins' bare loops)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
