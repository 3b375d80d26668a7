"""The URL preview fetcher against web servers on loopback, with a stand-in DNS so names
can point anywhere: a name is refused when any address it resolves to is blacklisted
(DNS rebinding), and proxy settings in the environment are never used."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from ranvier.config.generate import SYNAPSE_IP_RANGE_BLACKLIST
from ranvier.http.errors import MatrixError
from ranvier.services.media.url_preview.addresses import AddressPolicy
from ranvier.services.media.url_preview.fetcher import (
    BlockedAddressError,
    FilteringResolver,
    PreviewFetcher,
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
