"""What the simulators' test handles share: their admin routes over HTTP.

A handle holds a running simulator's root URL, its live in-process state, and an HTTP
client on the admin routes (``/_sim/*``), what an out-of-process client would use.
:class:`AdminHandle` has the routes every simulator serves (the request log, keys,
faults, reset), :class:`RunsHandle` adds ``GET /_sim/runs``; :func:`seed_of` reads the
seed a ``running_*`` function takes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

__all__ = ["AdminHandle", "RunsHandle", "seed_of"]

S = TypeVar("S")
T = TypeVar("T")


@dataclass
class AdminHandle(Generic[S]):
    """A running simulator: its URLs and its admin routes as methods.

    ``state`` is the live in-process state (the same thread-unsafe object the server
    uses): read it for assertions if you must, but change things through the admin
    methods, which go through the server's event loop.
    """

    root_url: str
    state: S
    _http: httpx.Client = field(repr=False)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def _put(self, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", path, dict(body or {}))
        return result

    def _list(self, path: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._call("GET", path)["data"]
        return data

    def requests(self) -> list[dict[str, Any]]:
        """Every API request received, oldest first (``GET /_sim/requests``)."""
        return self._list("/_sim/requests")

    def clear_requests(self) -> None:
        self._call("DELETE", "/_sim/requests")

    def put_key(self, api_key: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._put(f"/_sim/keys/{quote(api_key, safe='')}", body)

    def put_faults(self, body: Mapping[str, Any]) -> None:
        self._call("PUT", "/_sim/faults", dict(body))

    def reset(self, seed: Mapping[str, Any] | None = None) -> None:
        """Back to the seed state; with ``seed``, to that seed from now on."""
        self._call("POST", "/_sim/reset", dict(seed) if seed is not None else None)


@dataclass
class RunsHandle(AdminHandle[S]):
    """A handle on a simulator that lists its runs."""

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first, as it stands now (``GET /_sim/runs``)."""
        return self._list("/_sim/runs")


def seed_of(
    seed: Mapping[str, Any] | Path | str | T | None,
    seed_type: type[T],
    load: Callable[[str | Path], T],
    parse: Callable[[object], T],
) -> T:
    """The seed a ``running_*`` function was given: nothing (the empty seed), a seed, a
    YAML path, or a mapping."""
    if seed is None:
        return seed_type()
    if isinstance(seed, seed_type):
        return seed
    if isinstance(seed, str | Path):
        return load(seed)
    return parse(seed)
