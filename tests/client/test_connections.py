"""The target pool (targets/connections.py) against a real HTTP server on loopback.

The server is a few lines of asyncio: it answers keep-alive HTTP/1.1 requests, records
which connection each came on, and holds its answers while ``gate`` is clear, so a test
can see how many connections the bridge opens and what a request does when none is free.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from brew_bridge.config import BrewConfig
from brew_bridge.targets.brew.client import build_http_client
from brew_bridge.targets.connections import ConnectionShards, environment_proxy


@dataclass
class Server:
    url: str = ""
    connections: int = 0
    requests: list[int] = field(default_factory=list)  # the connection of each request
    lines: list[bytes] = field(default_factory=list)  # each request's first line
    waiting: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.requests.append(number)
                self.lines.append(head.split(b"\r\n", 1)[0])
                async with self.changed:
                    self.waiting += 1
                    self.changed.notify_all()
                await self.gate.wait()
                self.waiting -= 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def until_waiting(self, n: int) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.waiting >= n), 10)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    tcp = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/api/"
    yield state
    state.gate.set()
    tcp.close()


def client(server: Server, size: int) -> httpx.AsyncClient:
    return build_http_client(BrewConfig(base_url=server.url, max_connections=size))


async def test_at_most_max_connections_and_the_rest_wait(server: Server) -> None:
    async with client(server, size=3) as http:
        calls = [asyncio.create_task(http.get(f"r{i}")) for i in range(5)]
        await server.until_waiting(3)
        # Three are at the server, on three connections; two wait for one to free.
        assert server.connections == 3
        assert not any(call.done() for call in calls)
        server.gate.set()
        answers = await asyncio.gather(*calls)
    assert [a.status_code for a in answers] == [200] * 5
    assert server.connections == 3  # the two that waited reused freed connections
    assert len(server.requests) == 5


async def test_one_after_another_reuses_one_warm_connection(server: Server) -> None:
    server.gate.set()
    async with client(server, size=4) as http:
        for i in range(6):
            assert (await http.get(f"r{i}")).status_code == 200
    assert server.requests == [1] * 6


async def test_no_free_connection_within_the_pool_timeout_is_a_pool_timeout(
    server: Server,
) -> None:
    shards = ConnectionShards.for_url(server.url, 1)
    timeout = httpx.Timeout(10.0, pool=0.2)
    async with httpx.AsyncClient(base_url=server.url, transport=shards, timeout=timeout) as http:
        held = asyncio.create_task(http.get("held"))
        await server.until_waiting(1)
        with pytest.raises(httpx.PoolTimeout):
            await http.get("late")
        server.gate.set()
        assert (await held).status_code == 200
        # The timed-out waiter left nothing behind: the connection is lent again.
        assert (await http.get("again")).status_code == 200
    assert server.connections == 1


async def test_a_cancelled_waiter_does_not_keep_the_connection(server: Server) -> None:
    shards = ConnectionShards.for_url(server.url, 1)
    async with httpx.AsyncClient(base_url=server.url, transport=shards) as http:
        held = asyncio.create_task(http.get("held"))
        await server.until_waiting(1)
        waiting = asyncio.create_task(http.get("cancelled"))
        await asyncio.sleep(0)  # one step of that task: it reaches the pool and queues
        assert shards.waiting == 1
        waiting.cancel()
        server.gate.set()
        assert (await held).status_code == 200
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert shards.waiting == 0
        assert (await http.get("after")).status_code == 200
    assert server.requests == [1, 1]


async def test_a_proxy_from_the_environment_still_applies(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test server stands in for the proxy: the request reaches it in absolute form.
    monkeypatch.setenv("HTTP_PROXY", server.url.removesuffix("/api/"))
    for name in ("http_proxy", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server.gate.set()
    async with build_http_client(BrewConfig(base_url="http://brew.invalid/api/")) as http:
        assert (await http.get("v1/triggers")).status_code == 200
    assert server.lines == [b"GET http://brew.invalid/api/v1/triggers HTTP/1.1"]


@pytest.mark.parametrize(
    ("url", "proxies", "expected"),
    [
        ("https://api.brew.new/v1", {}, None),
        ("https://api.brew.new/v1", {"https": "http://proxy:3128"}, "http://proxy:3128"),
        ("http://sim.local/api", {"https": "http://proxy:3128"}, None),
        ("http://sim.local/api", {"all": "socks5://proxy:1080"}, "socks5://proxy:1080"),
        ("https://api.brew.new/v1", {"https": "http://p:1", "no": "brew.new"}, None),
        ("https://api.brew.new/v1", {"https": "http://p:1", "no": ".brew.new, x"}, None),
        ("https://api.brew.new/v1", {"https": "http://p:1", "no": "*"}, None),
        ("https://api.brew.new/v1", {"https": "http://p:1", "no": "new.brew"}, "http://p:1"),
    ],
)
def test_environment_proxy_by_scheme_and_no_proxy(
    url: str, proxies: dict[str, str], expected: str | None
) -> None:
    assert environment_proxy(url, proxies) == expected
