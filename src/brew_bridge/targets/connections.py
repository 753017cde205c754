"""A target's connection pool: one-connection httpx transports behind one free list.

httpcore's pool scans every connection it holds on each request and each response
close, and each scan of an idle connection asks anyio for the socket's attributes (a
``getpeername`` call and a dict built per connection). With 16 connections that scan
was over a third of the CPU of a bare httpx loop firing at the simulator, and the loop
ran at 650 fires/s; the same loop spread over one-connection transports ran at 1,470
(0.65 against 1.5 ms of CPU per fire; ``bench/deliver.py`` measures it, beside the bare
single-pool loop). So each connection here is its own ``httpx.AsyncHTTPTransport``
with a pool of one; :class:`ConnectionShards` lends a free one per request (the one
freed last first, so warm connections are reused) and takes it back when the response
is closed. A request that finds none free waits its pool timeout, then fails with
``httpx.PoolTimeout`` exactly as httpx's own pool does (a request not sent).

Handing a transport to ``httpx.AsyncClient`` turns off its proxy settings from the
environment, so :func:`environment_proxy` reads them as ``urllib`` finds them (the
scheme's ``*_PROXY``, else ``ALL_PROXY``; a ``NO_PROXY`` host and its subdomains, or
``*``, connect directly) and each connection goes through that proxy.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final

import httpx

__all__ = ["ConnectionShards", "environment_proxy"]

_ONE: Final = httpx.Limits(max_connections=1, max_keepalive_connections=1)


def environment_proxy(url: str, proxies: Mapping[str, str] | None = None) -> str | None:
    """The proxy for ``url`` (None: connect directly) among ``proxies``, by scheme as
    ``urllib.request.getproxies_environment()`` gives them (its default), with ``no``
    the ``NO_PROXY`` list."""
    found = dict(urllib.request.getproxies_environment() if proxies is None else proxies)
    target = httpx.URL(url)
    bypass = found.pop("no", None)
    if bypass is not None and _bypassed(target.host, bypass):
        return None
    return found.get(target.scheme) or found.get("all")


def _bypassed(host: str, no_proxy: str) -> bool:
    if no_proxy.strip() == "*":
        return True
    for entry in (e.strip().lower().lstrip(".") for e in no_proxy.split(",")):
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


class ConnectionShards(httpx.AsyncBaseTransport):
    """``size`` one-connection transports made by ``make``, lent one per request."""

    def __init__(self, size: int, make: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._shards = [make() for _ in range(size)]
        self._free: list[httpx.AsyncBaseTransport] = list(self._shards)
        self._waiters: deque[asyncio.Future[httpx.AsyncBaseTransport]] = deque()

    @classmethod
    def for_url(cls, url: str, size: int) -> ConnectionShards:
        proxy = environment_proxy(url)
        # One TLS context for all: each transport would load the CA bundle again
        # (~20 ms and ~1.5 MB apiece).
        tls = httpx.create_ssl_context()
        return cls(size, lambda: httpx.AsyncHTTPTransport(verify=tls, limits=_ONE, proxy=proxy))

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection now."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        shard = await self._lend(timeouts.get("pool"))
        try:
            response = await shard.handle_async_request(request)
        except BaseException:
            self._give_back(shard)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _GivenBackOnClose(response.stream, lambda: self._give_back(shard))
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()

    async def _lend(self, wait_at_most: float | None) -> httpx.AsyncBaseTransport:
        if self._free:
            return self._free.pop()
        waiter: asyncio.Future[httpx.AsyncBaseTransport] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(wait_at_most):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._give_back(waiter.result())  # handed over just as this gave up
            else:
                waiter.cancel()  # left in the queue; _give_back skips it
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("no free connection within the pool timeout") from None
            raise

    def _give_back(self, shard: httpx.AsyncBaseTransport) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(shard)
                return
        self._free.append(shard)


class _GivenBackOnClose(httpx.AsyncByteStream):
    """A response body that returns its connection's transport once closed."""

    def __init__(self, stream: httpx.AsyncByteStream, give_back: Callable[[], None]) -> None:
        self._stream = stream
        self._give_back: Callable[[], None] | None = give_back

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        give_back, self._give_back = self._give_back, None
        try:
            await self._stream.aclose()
        finally:
            if give_back is not None:
                give_back()
