"""URL previews over HTTP, on both engines, against web servers this test runs on loopback.

The homeserver blacklists Synapse's recommended ranges (all of 127.0.0.0/8 among them) and
whitelists only 127.0.0.2, where the "site" listens. A "trap" listens on 127.0.0.1,
127.0.0.3 and ::1; every refusal is checked both by its answer and by the trap (and the
site) never having seen a request. A second trap, on 127.0.0.1 and ::1, records every TCP
connection, request or not: no spelling of loopback may even connect to it.
"""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from PIL import Image

from ranvier.config.generate import SYNAPSE_IP_RANGE_BLACKLIST
from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer, free_port, serving
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, register

PREVIEW = "/_matrix/client/v1/media/preview_url"
LEGACY_PREVIEW = "/_matrix/media/v3/preview_url"
MAX_SPIDER_SIZE = 64 * 1024
SITE_HOST = "127.0.0.2"
TRAP_HOSTS = ("127.0.0.1", "127.0.0.3")


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


IMAGE = png(40, 30)


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


class WebServers:
    """The site (whitelisted) and the trap (blacklisted), in a thread of their own, each
    recording every request it gets."""

    def __init__(self) -> None:
        self.site_port = free_port()
        self.trap_port = self._port_free_on_all(TRAP_HOSTS)
        self.site = f"http://{SITE_HOST}:{self.site_port}"
        self.site_log: list[str] = []
        self.trap_log: list[str] = []
        self.trap_on_ipv6 = ipv6_loopback_available()
        self.connection_trap_hosts = ("127.0.0.1", "::1") if self.trap_on_ipv6 else ("127.0.0.1",)
        self.connection_trap_port = self._port_free_on_all(self.connection_trap_hosts)
        self.connection_log: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.Server] = []

    @staticmethod
    def _port_free_on_all(hosts: tuple[str, ...]) -> int:
        for _ in range(50):
            port = free_port()
            try:
                for host in hosts:
                    family = socket.AF_INET6 if ":" in host else socket.AF_INET
                    with socket.socket(family) as sock:
                        sock.bind((host, port))
                return port
            except OSError:
                continue
        raise RuntimeError("no port free on every trap address")

    def site_requests(self, path: str) -> int:
        return sum(1 for seen in self.site_log if seen == path)

    # the site's pages

    async def _site(self, request: web.Request) -> web.StreamResponse:
        self.site_log.append(request.path)
        handler = getattr(
            self, "_page_" + request.path.strip("/").replace("-", "_").replace(".", "_"), None
        )
        if handler is None:
            return web.Response(status=404, text="not here")
        response: web.StreamResponse = await handler(request)
        return response

    async def _page_page(self, request: web.Request) -> web.Response:
        return web.Response(
            content_type="text/html",
            charset="utf-8",
            text="""<!doctype html><html><head><title>Fallback title</title>
            <meta property="og:title" content="The Page &amp; its title">
            <meta property="og:description" content="What the page is about">
            <meta property="og:image" content="/image.png">
            </head><body><p>Body text</p></body></html>""",
        )

    async def _page_plain(self, request: web.Request) -> web.Response:
        return web.Response(
            body="""<html><head><title>Caf\xe9 page</title>
            <meta name="description" content="A plain page"></head>
            <body><img src="image.png"></body></html>""".encode("latin-1"),
            headers={"Content-Type": "text/html; charset=iso-8859-1"},
        )

    async def _page_image_png(self, request: web.Request) -> web.Response:
        return web.Response(body=IMAGE, content_type="image/png")

    async def _page_trap_image(self, request: web.Request) -> web.Response:
        return web.Response(
            content_type="text/html",
            text=f"""<meta property="og:title" content="Image elsewhere">
            <meta property="og:image" content="http://127.0.0.3:{self.trap_port}/evil.png">""",
        )

    async def _page_redirect_to_trap(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.3:{self.trap_port}/landing")

    async def _page_redirect_to_mapped_trap(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://[::ffff:127.0.0.3]:{self.trap_port}/landing")

    async def _page_redirect_to_localhost(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://localhost:{self.trap_port}/landing")

    async def _page_redirect(self, request: web.Request) -> web.Response:
        # set as is, not through HTTPFound, which would normalise the URL on the way out
        return web.Response(status=302, headers={"Location": request.query["to"]})

    async def _page_redirect_to_page(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/redirected")

    async def _page_redirected(self, request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text="<title>Arrived</title>")

    async def _page_redirect_loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/redirect-loop")

    async def _page_big(self, request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text="<p>" + "x" * (MAX_SPIDER_SIZE + 1))

    async def _page_big_unannounced(self, request: web.Request) -> web.StreamResponse:
        # chunked, so no Content-Length tells the fetcher in advance
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(MAX_SPIDER_SIZE // 1024 + 8):
            await response.write(b"<p>" + b"y" * 1021)
        await response.write_eof()
        return response

    async def _page_cached(self, request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text="<title>Cached once</title>")

    async def _page_historic(self, request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text="<title>As of then</title>")

    async def _page_slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.Response(content_type="text/html", text="<title>Slow page</title>")

    async def _page_missing(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="gone")

    async def _page_text(self, request: web.Request) -> web.Response:
        return web.Response(text="just text")

    async def _page_private_secret(self, request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text="<title>Secret</title>")

    async def _trap(self, request: web.Request) -> web.Response:
        self.trap_log.append(f"{request.host}{request.path}")
        return web.Response(content_type="text/html", text="<title>Should never be seen</title>")

    async def _connected_to_trap(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connection_log.append(str(writer.get_extra_info("sockname")))
        writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        site = web.Application()
        site.router.add_get("/{tail:.*}", self._site)
        trap = web.Application()
        trap.router.add_route("*", "/{tail:.*}", self._trap)
        site_runner = web.AppRunner(site)
        trap_runner = web.AppRunner(trap)
        for runner in (site_runner, trap_runner):
            await runner.setup()
            self._runners.append(runner)
        await web.TCPSite(site_runner, SITE_HOST, self.site_port).start()
        for host in TRAP_HOSTS:
            await web.TCPSite(trap_runner, host, self.trap_port).start()
        if self.trap_on_ipv6:
            await web.TCPSite(trap_runner, "::1", self.trap_port).start()
        for host in self.connection_trap_hosts:
            self._servers.append(
                await asyncio.start_server(self._connected_to_trap, host, self.connection_trap_port)
            )

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self) -> None:
        async def cleanup() -> None:
            for runner in self._runners:
                await runner.cleanup()
            for listener in self._servers:
                listener.close()
                await listener.wait_closed()

        asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def web_servers() -> Iterator[WebServers]:
    servers = WebServers()
    servers.start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    web_servers: WebServers,
) -> Iterator[RunningServer]:
    with serving(
        tmp_path_factory.mktemp("hs"),
        module_database,
        url_preview_enabled=True,
        url_preview_ip_range_blacklist=list(SYNAPSE_IP_RANGE_BLACKLIST),
        url_preview_ip_range_whitelist=[SITE_HOST],
        url_preview_url_blacklist=[
            {"path": "/private/*"},
            {"netloc": f"^{SITE_HOST.replace('.', '[.]')}:[0-9]+$", "path": "^/regex-blocked"},
        ],
        max_spider_size=MAX_SPIDER_SIZE,
        **REGISTRATION_CONFIG,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def trap_stays_untouched(web_servers: WebServers) -> Iterator[None]:
    """No test may make the homeserver contact the trap. (The logs restart with each test,
    so a failure names the test that caused it: the web servers outlive the homeserver of
    each engine.)"""
    web_servers.site_log.clear()
    web_servers.trap_log.clear()
    web_servers.connection_log.clear()
    yield
    assert web_servers.trap_log == [], "a blacklisted address was contacted"
    assert web_servers.connection_log == [], "a blacklisted address was connected to"


def preview(server: RunningServer, session: Session, url: str, **query: Any) -> Reply:
    params = "".join(f"&{key}={value}" for key, value in query.items())
    return authed(session, "GET", f"{server.url}{PREVIEW}?url={quote(url, safe='')}{params}")


def assert_refused(reply: Reply, status: int, errcode: str = "M_UNKNOWN") -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def test_whitelisted_page_gives_title_description_and_image_as_local_media(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    reply = preview(server, alice, web_servers.site + "/page")
    assert reply.status == 200, reply.body
    og = reply.json()
    assert og["og:title"] == "The Page & its title"
    assert og["og:description"] == "What the page is about"
    assert og["og:image"].startswith("mxc://test.localhost/")
    assert og["og:image:type"] == "image/png"
    assert og["og:image:width"] == 40
    assert og["og:image:height"] == 30
    assert og["matrix:image:size"] == len(IMAGE)
    assert web_servers.site_requests("/page") == 1
    assert web_servers.site_requests("/image.png") >= 1
    media_id = og["og:image"].rsplit("/", 1)[1]
    download = authed(
        alice, "GET", f"{server.url}/_matrix/client/v1/media/download/test.localhost/{media_id}"
    )
    assert download.status == 200
    assert download.body == IMAGE


def test_page_without_open_graph_falls_back_to_title_description_and_first_image(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    reply = preview(server, alice, web_servers.site + "/plain")
    assert reply.status == 200, reply.body
    og = reply.json()
    assert og["og:title"] == "Café page"
    assert og["og:description"] == "A plain page"
    assert og["og:image"].startswith("mxc://test.localhost/")


def test_an_image_url_previews_as_the_image(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    reply = preview(server, alice, web_servers.site + "/image.png")
    assert reply.status == 200, reply.body
    og = reply.json()
    assert og["og:image"].startswith("mxc://test.localhost/")
    assert (og["og:image:width"], og["og:image:height"]) == (40, 30)
    assert og["og:image:type"] == "image/png"
    assert og["matrix:image:size"] == len(IMAGE)


def test_legacy_endpoint_previews_too_and_both_need_a_token(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    url = quote(web_servers.site + "/redirected", safe="")
    reply = authed(alice, "GET", f"{server.url}{LEGACY_PREVIEW}?url={url}")
    assert reply.status == 200, reply.body
    assert reply.json()["og:title"] == "Arrived"
    for path in (PREVIEW, LEGACY_PREVIEW):
        assert_refused(request("GET", f"{server.url}{path}?url={url}"), 401, "M_MISSING_TOKEN")


def test_bad_parameters_are_refused(server: RunningServer, alice: Session) -> None:
    assert_refused(authed(alice, "GET", server.url + PREVIEW), 400, "M_MISSING_PARAM")
    for url in ("ftp://example.org/file", "not a url", "file:///etc/passwd"):
        assert_refused(preview(server, alice, url), 400, "M_INVALID_PARAM")
    assert_refused(
        preview(server, alice, "https://example.org/", ts="soon"), 400, "M_INVALID_PARAM"
    )


def test_redirects_within_the_whitelist_are_followed(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    reply = preview(server, alice, web_servers.site + "/redirect-to-page")
    assert reply.status == 200, reply.body
    assert reply.json() == {"og:title": "Arrived"}


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.3",
        "[::1]",
        "[::ffff:127.0.0.3]",
        "[::ffff:7f00:1]",
        "10.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        # legacy spellings of 127.0.0.1 that resolvers accept
        "127.1",
        "2130706433",
        "0x7f000001",
    ],
)
def test_blacklisted_ip_literals_are_refused_without_a_request(
    server: RunningServer, alice: Session, web_servers: WebServers, host: str
) -> None:
    started = time.monotonic()
    reply = preview(server, alice, f"http://{host}:{web_servers.trap_port}/")
    assert_refused(reply, 403)
    assert reply.json()["error"] == "IP address blocked"
    # refused before connecting: nothing was waited for (10/8 would take the connect timeout)
    assert time.monotonic() - started < 5


def in_digits(text: str, zero: int) -> str:
    """`text` with its ASCII digits written in the Unicode digits whose zero is `zero`
    (written this way so the source shows which script each spelling uses)."""
    return "".join(chr(zero + int(char)) if char.isdigit() else char for char in text)


FULLWIDTH = 0xFF10
ARABIC_INDIC = 0x0660
EXTENDED_ARABIC_INDIC = 0x06F0
DEVANAGARI = 0x0966
MATHEMATICAL_BOLD = 0x1D7CE
FULLWIDTH_STOP = "\uff0e"
IDEOGRAPHIC_STOP = "\u3002"  # a label separator to IDNA, as the two others are
HALFWIDTH_IDEOGRAPHIC_STOP = "\uff61"
CIRCLED_127 = "\u2460\u2461\u2466"

# Spellings of loopback (127.0.0.1 or ::1) that URL parsers, IDNA or resolvers may turn into
# the address itself: the host as written is one thing, what aiohttp connects to another.
LOOPBACK_IP_SPELLINGS = [
    # IDNA folds fullwidth digits and stops to ASCII: aiohttp connects to 127.0.0.1
    in_digits("127.0.0.1", FULLWIDTH).replace(".", FULLWIDTH_STOP),
    in_digits("127", FULLWIDTH) + ".0.0.1",
    "127.0.0.1".replace(".", FULLWIDTH_STOP),
    "127.0.0.1".replace(".", IDEOGRAPHIC_STOP),
    "127.0.0.1".replace(".", HALFWIDTH_IDEOGRAPHIC_STOP),
    in_digits("127.0.0.1", ARABIC_INDIC),
    in_digits("127.0.0.1", EXTENDED_ARABIC_INDIC),
    in_digits("127.0.0.1", DEVANAGARI),
    in_digits("127.0.0.1", MATHEMATICAL_BOLD),
    CIRCLED_127 + ".0.0.1",
    in_digits("127", FULLWIDTH)
    + IDEOGRAPHIC_STOP
    + in_digits("0", ARABIC_INDIC)
    + ".0"
    + FULLWIDTH_STOP
    + in_digits("1", DEVANAGARI),
    in_digits("2130706433", FULLWIDTH),
    # legacy numeric forms resolvers accept
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0X7F000001",
    "0x7f.1",
    "0x7f.0x0.0x0.0x1",
    "0177.0.0.1",
    "0177.1",
    "127.0.0.1.",
    "%31%32%37.0.0.1",
    # IPv6 loopback, and 127.0.0.1 inside IPv6
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::FFFF:127.0.0.1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible
]
# names, not addresses: refused because they resolve into the blacklist or nowhere
LOOPBACK_NAME_SPELLINGS = [
    "LOCALHOST",
    "".join(chr(ord(char) - ord("a") + 0xFF41) for char in "localhost"),  # fullwidth letters
    "LocalHost.",
    "xn--9hbcp.xn--8hb.xn--8hb.xn--9hb",  # the IDNA form of the Arabic-Indic 127.0.0.1
]


@pytest.mark.parametrize("host", LOOPBACK_IP_SPELLINGS)
def test_every_spelling_of_loopback_is_refused_without_a_connection(
    server: RunningServer, alice: Session, web_servers: WebServers, host: str
) -> None:
    reply = preview(server, alice, f"http://{host}:{web_servers.connection_trap_port}/")
    assert_refused(reply, 403)
    assert reply.json()["error"] == "IP address blocked"
    redirected = preview(
        server,
        alice,
        web_servers.site
        + "/redirect?to="
        + quote(f"http://{host}:{web_servers.connection_trap_port}/landing", safe=""),
    )
    assert_refused(redirected, 403)
    assert web_servers.site_requests("/redirect") == 1


@pytest.mark.parametrize("host", LOOPBACK_NAME_SPELLINGS)
def test_every_spelling_of_a_loopback_name_is_refused_without_a_connection(
    server: RunningServer, alice: Session, web_servers: WebServers, host: str
) -> None:
    target = f"http://{host}:{web_servers.connection_trap_port}/"
    assert_refused(preview(server, alice, target), 502)
    redirected = preview(server, alice, web_servers.site + "/redirect?to=" + quote(target))
    assert_refused(redirected, 502)
    assert web_servers.site_requests("/redirect") == 1


def test_a_name_resolving_to_loopback_is_refused_without_a_request(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    for host in ("localhost", "LOCALHOST."):
        reply = preview(server, alice, f"http://{host}:{web_servers.trap_port}/")
        assert_refused(reply, 502)
        assert "DNS" in reply.json()["error"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/redirect-to-trap", 403),
        ("/redirect-to-mapped-trap", 403),
        ("/redirect-to-localhost", 502),
    ],
)
def test_a_redirect_into_the_blacklist_is_refused_at_the_redirect(
    server: RunningServer, alice: Session, web_servers: WebServers, path: str, status: int
) -> None:
    reply = preview(server, alice, web_servers.site + path)
    assert_refused(reply, status)
    assert web_servers.site_requests(path) == 1


def test_an_endless_redirect_is_given_up(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    assert_refused(preview(server, alice, web_servers.site + "/redirect-loop"), 502)
    assert web_servers.site_requests("/redirect-loop") == 6


def test_an_og_image_in_the_blacklist_is_left_out_not_fetched(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    reply = preview(server, alice, web_servers.site + "/trap-image")
    assert reply.status == 200, reply.body
    assert reply.json() == {"og:title": "Image elsewhere"}


def test_url_blacklist_patterns_refuse_before_fetching(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    for path in ("/private/secret", "/regex-blocked/page"):
        reply = preview(server, alice, web_servers.site + path)
        assert_refused(reply, 403)
        assert "blacklist" in reply.json()["error"]
        assert web_servers.site_requests(path) == 0


def test_oversize_bodies_are_refused(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    for path in ("/big", "/big-unannounced"):
        assert_refused(preview(server, alice, web_servers.site + path), 502, "M_TOO_LARGE")


def test_site_errors_and_unpreviewable_types_are_bad_gateway(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    assert_refused(preview(server, alice, web_servers.site + "/missing"), 502)
    assert_refused(preview(server, alice, web_servers.site + "/text"), 502)
    # nothing listens on this whitelisted port
    assert_refused(preview(server, alice, f"http://{SITE_HOST}:{free_port()}/"), 502)


def test_a_cached_preview_is_answered_without_fetching_again(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    first = preview(server, alice, web_servers.site + "/cached")
    second = preview(server, alice, web_servers.site + "/cached")
    bob = register(server.url, "bob")
    third = preview(server, bob, web_servers.site + "/cached")
    assert first.status == second.status == third.status == 200
    assert first.json() == second.json() == third.json() == {"og:title": "Cached once"}
    assert web_servers.site_requests("/cached") == 1


def test_ts_asks_for_the_preview_as_of_a_time(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    now = int(time.time() * 1000)
    assert preview(server, alice, web_servers.site + "/historic").status == 200
    # before the first fetch: the oldest answer will do; in the future: past expiry, fetch
    earlier = preview(server, alice, web_servers.site + "/historic", ts=now - 60_000)
    assert earlier.json() == {"og:title": "As of then"}
    assert web_servers.site_requests("/historic") == 1
    later = preview(server, alice, web_servers.site + "/historic", ts=now + 2 * 3_600_000)
    assert later.json() == {"og:title": "As of then"}
    assert web_servers.site_requests("/historic") == 2


def test_concurrent_previews_of_one_url_fetch_it_once(
    server: RunningServer, alice: Session, web_servers: WebServers
) -> None:
    with ThreadPoolExecutor(max_workers=5) as pool:
        replies = list(
            pool.map(lambda _: preview(server, alice, web_servers.site + "/slow"), range(5))
        )
    assert [reply.status for reply in replies] == [200] * 5
    assert all(reply.json() == {"og:title": "Slow page"} for reply in replies)
    assert web_servers.site_requests("/slow") == 1
