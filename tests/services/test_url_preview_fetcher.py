"""The URL preview fetcher against web servers on loopback, with a stand-in DNS so names
can point anywhere: a name is refused when any address it resolves to is blacklisted
(DNS rebinding), proxy settings in the environment are never used, and the socket guard
on its own keeps every connection off the blacklist, whatever spelling reached it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import AddrInfoType

from ranvier.config.generate import SYNAPSE_IP_RANGE_BLACKLIST
from ranvier.errors import MatrixError
from ranvier.protocol.ip_addresses import AddressPolicy
from ranvier.services.media.url_preview import fetcher as fetcher_module
from ranvier.services.media.url_preview.fetcher import (
    BlockedAddressError,
    BlockedConnectionError,
    FilteringResolver,
    GuardedSocket,
    PreviewFetcher,
    guarded_socket_factory,
)
from tests.integration.homeserver import free_port

POLICY = AddressPolicy.from_config(SYNAPSE_IP_RANGE_BLACKLIST, ["127.0.0.2"])


class FakeDns(AbstractResolver):
    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(None, f"no such name {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


class Server:
    def __init__(self, host: str) -> None:
        self.host = host
        self.port = free_port()
        self.seen: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.host}{request.path_qs}")
        return web.Response(content_type="text/html", text="<title>hello</title>")


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    site, trap = Server("127.0.0.2"), Server("127.0.0.1")
    runners = []
    for server in (site, trap):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, server.host, server.port).start()
        runners.append(runner)
    yield site, trap
    for runner in runners:
        await runner.cleanup()


def fetcher(dns: FakeDns, max_size: int = 1024 * 1024) -> PreviewFetcher:
    return PreviewFetcher(
        POLICY,
        max_size=max_size,
        accept_language=["en"],
        url_refused=lambda url: False,
        resolver=dns,
    )


def html(media_type: str) -> bool:
    return media_type == "text/html"


async def test_a_mixed_answer_refuses_the_whole_name() -> None:
    dns = FakeDns({"mixed.test": ["93.184.216.34", "10.0.0.1"], "public.test": ["1.1.1.1"]})
    resolver = FilteringResolver(POLICY, dns)
    with pytest.raises(BlockedAddressError):
        await resolver.resolve("mixed.test", 80)
    with pytest.raises(BlockedAddressError):
        dns.names["v6.test"] = ["2606:4700::1", "::ffff:169.254.169.254"]
        await resolver.resolve("v6.test", 80)
    assert [r["host"] for r in await resolver.resolve("public.test", 80)] == ["1.1.1.1"]


async def test_names_resolving_to_the_whitelist_are_fetched_and_into_the_blacklist_not(
    servers: tuple[Server, Server],
) -> None:
    site, trap = servers
    dns = FakeDns(
        {
            "site.test": ["127.0.0.2"],
            "rebind.test": ["127.0.0.2", "127.0.0.1"],
            "trap.test": ["127.0.0.1"],
        }
    )
    previews = fetcher(dns)
    try:
        fetched = await previews.fetch(f"http://site.test:{site.port}/page", html)
        assert fetched.body == b"<title>hello</title>"
        assert fetched.media_type == "text/html"
        for name in ("rebind.test", "trap.test", "nowhere.test"):
            with pytest.raises(MatrixError) as refused:
                await previews.fetch(f"http://{name}:{trap.port}/", html)
            assert (refused.value.status, refused.value.errcode) == (502, "M_UNKNOWN")
    finally:
        await previews.close()
    assert site.seen == [f"site.test:{site.port}/page"]
    assert trap.seen == []


async def test_proxy_settings_in_the_environment_are_ignored(
    servers: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    site, trap = servers
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.2:{site.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    previews = fetcher(FakeDns({}))
    try:
        with pytest.raises(MatrixError) as refused:
            await previews.fetch(f"http://127.0.0.1:{trap.port}/", html)
        assert refused.value.status == 403
        # a proxy would have been asked for the trap's URL
        with pytest.raises(MatrixError):
            await previews.fetch(f"http://public.test:{trap.port}/", html)
    finally:
        await previews.close()
    assert site.seen == [] and trap.seen == []


async def test_the_accept_language_and_user_agent_are_sent() -> None:
    headers: dict[str, str] = {}

    async def record(request: web.Request) -> web.Response:
        headers.update(request.headers)
        return web.Response(content_type="text/html", text="ok")

    app = web.Application()
    app.router.add_get("/", record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.2", port).start()
    previews = PreviewFetcher(
        POLICY, max_size=1024, accept_language=["fr", "en;q=0.5"], url_refused=lambda u: False
    )
    try:
        await previews.fetch(f"http://127.0.0.2:{port}/", html)
    finally:
        await previews.close()
        await runner.cleanup()
    assert headers["Accept-Language"] == "fr, en;q=0.5"
    assert "Ranvier" in headers["User-Agent"]


async def test_slow_sites_time_out() -> None:
    async def never_answers(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="too late")

    async def trickles(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"<p>")
            await asyncio.sleep(0.1)
        return response

    app = web.Application()
    app.router.add_get("/never", never_answers)
    app.router.add_get("/trickle", trickles)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.2", port).start()
    previews = PreviewFetcher(
        POLICY,
        max_size=1024 * 1024,
        accept_language=["en"],
        url_refused=lambda u: False,
        response_timeout=0.3,
        body_timeout=0.3,
    )
    try:
        with pytest.raises(MatrixError) as refused:
            await previews.fetch(f"http://127.0.0.2:{port}/never", html)
        assert (refused.value.status, refused.value.errcode) == (504, "M_UNKNOWN")
        with pytest.raises(MatrixError) as refused:
            await previews.fetch(f"http://127.0.0.2:{port}/trickle", html)
        assert (refused.value.status, refused.value.errcode) == (502, "M_TOO_LARGE")
    finally:
        await previews.close()
        await runner.cleanup()


class ConnectionTrap:
    """A listener on loopback that records every TCP connection made to it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


async def test_a_guarded_socket_refuses_before_the_connect_call() -> None:
    trap = ConnectionTrap()
    await trap.start()
    try:
        for address in [
            ("127.0.0.1", trap.port),
            ("2130706433", trap.port),  # the C library would resolve it to 127.0.0.1
            ("127.1", trap.port),
            (b"127.0.0.1", trap.port),
        ]:
            with GuardedSocket(socket.AF_INET, socket.SOCK_STREAM, policy=POLICY) as sock:
                with pytest.raises(BlockedConnectionError):
                    sock.connect(address)
                with pytest.raises(BlockedConnectionError):
                    sock.connect_ex(address)
        # without a policy (a dup, say) nothing is allowed
        with (
            GuardedSocket(socket.AF_INET, socket.SOCK_STREAM) as sock,
            pytest.raises(BlockedConnectionError),
        ):
            sock.connect(("127.0.0.2", trap.port))
    finally:
        await trap.stop()
    assert trap.connections == 0


def sockets_checked_only_at_connect(addr_info: AddrInfoType) -> socket.socket:
    family, type_, proto, _, _ = addr_info
    return GuardedSocket(family, type_, proto, policy=POLICY)


async def guard_alone(
    site: Server, trap: ConnectionTrap, socket_factory: Callable[[AddrInfoType], socket.socket]
) -> None:
    """A session whose only defence is the socket guard: no early check, and a resolver
    that hands blocked addresses over."""
    # unfiltered: it hands the blocked address over
    dns = FakeDns({"trap.test": ["127.0.0.1"], "site.test": ["127.0.0.2"]})
    connector = aiohttp.TCPConnector(
        resolver=dns, use_dns_cache=False, socket_factory=socket_factory
    )
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        for url in [
            f"http://127.0.0.1:{trap.port}/",
            f"http://[::ffff:127.0.0.1]:{trap.port}/",
            f"http://trap.test:{trap.port}/",
            # IDNA makes this 127.0.0.1, which aiohttp then takes for an IP literal
            "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11:" + f"{trap.port}/",
        ]:
            with pytest.raises(aiohttp.ClientConnectorError) as refused:
                await session.get(url)
            assert isinstance(refused.value.os_error, BlockedConnectionError), url
        async with session.get(f"http://site.test:{site.port}/") as response:
            assert await response.text() == "<title>hello</title>"


@pytest.mark.parametrize("loop_factory", ["asyncio", "uvloop"])
@pytest.mark.parametrize(
    "socket_factory",
    [guarded_socket_factory(POLICY), sockets_checked_only_at_connect],
    ids=["factory", "connect-only"],
)
def test_the_socket_guard_alone_keeps_every_connection_off_the_blacklist(
    loop_factory: str, socket_factory: Callable[[AddrInfoType], socket.socket]
) -> None:
    """Under both event loops (production runs uvloop, whose sock_connect resolves again),
    and with the check at `connect` alone: both loops call the socket's own `connect`."""
    if loop_factory == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    async def run() -> tuple[list[str], int]:
        site = Server("127.0.0.2")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", site.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, site.host, site.port).start()
        trap = ConnectionTrap()
        await trap.start()
        try:
            await guard_alone(site, trap, socket_factory)
        finally:
            await trap.stop()
            await runner.cleanup()
        return site.seen, trap.connections

    with asyncio.Runner(loop_factory=factory) as running:
        seen, connections = running.run(run())
    assert connections == 0
    assert len(seen) == 1


async def test_the_fetcher_answers_a_guard_refusal_as_a_blocked_ip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as if the early check had missed a spelling: the guard still refuses, with a 403
    monkeypatch.setattr(fetcher_module, "parse_ip_literal", lambda host: None)
    trap = ConnectionTrap()
    await trap.start()
    previews = fetcher(FakeDns({}))
    try:
        for host in ("127.0.0.1", "[::ffff:127.0.0.1]", "\uff11\uff12\uff17\u30020\u30020\u30021"):
            with pytest.raises(MatrixError) as refused:
                await previews.fetch(f"http://{host}:{trap.port}/", html)
            assert (refused.value.status, refused.value.errcode) == (403, "M_UNKNOWN"), host
    finally:
        await previews.close()
        await trap.stop()
    assert trap.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/",
        "http://127\u30020\u30020\u30021/",
        "http://\u0661\u0662\u0667.\u0660.\u0660.\u0661/",
        "http://[::FFFF:7F00:1]/",
        "http://0x7f.1/",
    ],
)
def test_the_early_check_refuses_what_the_client_would_read_as_loopback(url: str) -> None:
    with pytest.raises(MatrixError) as refused:
        fetcher(FakeDns({})).check_target(url)
    assert (refused.value.status, refused.value.errcode) == (403, "M_UNKNOWN")


def test_the_early_check_hands_over_the_url_it_checked() -> None:
    target = fetcher(FakeDns({})).check_target("http://\uff45xample.org/path")
    assert target.raw_host == "example.org"
