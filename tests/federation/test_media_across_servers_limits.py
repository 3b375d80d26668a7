"""The limits on fetching other servers' media: prevent_media_downloads_from (never
fetched, answered 404 as Synapse), remote_media_download_burst_count / _per_second (the
bytes one client address may have fetched, 429 once spent; cached media is still served),
ip_range_blacklist (an origin in a refused range is never connected to: 502), and the
legacy endpoints with enable_authenticated_media off (they fetch too, unless
allow_remote=false).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import new_database_config
from tests.federation.harness import FederatingServer, FederationCA, federating, register
from tests.federation.media_fakes import MediaFake, download, thumbnail
from tests.integration.conftest import as_yaml_section
from tests.integration.homeserver import free_port

# the prevented server's port is chosen before the Ranvier that refuses it starts
PREVENTED_PORT = free_port()
BURST_BYTES = 100_000


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    sqlite_section: dict[str, Any],
) -> Iterator[FederatingServer]:
    with federating(
        tmp_path_factory.mktemp("ranvier"),
        sqlite_section,
        test_ca,
        prevent_media_downloads_from=[f"localhost:{PREVENTED_PORT}"],
        remote_media_download_burst_count=BURST_BYTES,
        remote_media_download_per_second=1,
        enable_authenticated_media=False,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def origin(test_ca: FederationCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaFake]:
    with MediaFake.running(test_ca, tmp_path_factory.mktemp("origin")) as fake:
        assert isinstance(fake, MediaFake)
        yield fake


def test_media_of_a_prevented_server_is_never_fetched(
    server: FederatingServer, test_ca: FederationCA, tmp_path_factory: pytest.TempPathFactory
) -> None:
    bob = register(server, "bob")
    prevented = MediaFake(test_ca, tmp_path_factory.mktemp("prevented"), port=PREVENTED_PORT)
    prevented.start()
    try:
        prevented.serve_federation_file("someMedia", b"not to be had", "text/plain", "n.txt")
        reply = download(server, bob, prevented.server_name, "someMedia")
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
        reply = thumbnail(server, bob, prevented.server_name, "someMedia", "width=8&height=8")
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
        assert prevented.requests_for("/media/") == []
    finally:
        prevented.stop()


def test_the_legacy_endpoints_fetch_unless_allow_remote_is_false(
    server: FederatingServer, origin: MediaFake
) -> None:
    origin.serve_federation_file("legacyAsked", b"old clients too", "text/plain", "o.txt")
    origin.serve_federation_file("notAsked", b"never fetched", "text/plain", "n.txt")
    reply = download(server, None, origin.server_name, "notAsked", query="allow_remote=false")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    assert origin.requests_for("notAsked") == []
    reply = download(server, None, origin.server_name, "legacyAsked")
    assert (reply.status, reply.body) == (200, b"old clients too")
    # cached: allow_remote=false only stops fetching
    reply = download(server, None, origin.server_name, "legacyAsked", query="allow_remote=false")
    assert (reply.status, reply.body) == (200, b"old clients too")
    reply = download(server, None, origin.server_name, "legacyAsked", query="allow_remote=no")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def another_database(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, Any]]:
    async for config in new_database_config("sqlite", tmp_path_factory.mktemp("db")):
        yield as_yaml_section(config)


def test_an_origin_in_a_refused_ip_range_is_never_connected_to(
    test_ca: FederationCA,
    tmp_path_factory: pytest.TempPathFactory,
    another_database: dict[str, Any],
    origin: MediaFake,
) -> None:
    origin.serve_federation_file("blocked", b"behind the blacklist", "text/plain", "b.txt")
    # the default ip_range_blacklist covers loopback; no whitelist this time
    with federating(
        tmp_path_factory.mktemp("strict"), another_database, test_ca, ip_range_whitelist=[]
    ) as strict:
        dan = register(strict, "dan")
        reply = download(strict, dan, origin.server_name, "blocked")
        assert (reply.status, reply.errcode) == (502, "M_UNKNOWN")
    assert origin.requests_for("blocked") == []


def test_fetching_past_the_byte_budget_is_rate_limited(
    server: FederatingServer, origin: MediaFake
) -> None:
    carol = register(server, "carol")
    chunk = b"y" * (BURST_BYTES * 6 // 10)
    for name in ("first", "second", "third"):
        origin.serve_federation_file(name, chunk, "text/plain", f"{name}.txt")
    # the first fetch fits the budget; the second is allowed to overdraw it (its size
    # is known only once fetched); after that, nothing more is fetched
    assert download(server, carol, origin.server_name, "first").status == 200
    assert download(server, carol, origin.server_name, "second").status == 200
    reply = download(server, carol, origin.server_name, "third")
    assert (reply.status, reply.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert reply.json()["retry_after_ms"] > 0
    assert origin.requests_for("/third") == []
    # what is cached costs nothing to serve
    reply = download(server, carol, origin.server_name, "first")
    assert (reply.status, reply.body) == (200, chunk)
