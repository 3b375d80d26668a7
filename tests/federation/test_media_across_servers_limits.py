"""The limits on fetching other servers' media: prevent_media_downloads_from (never
fetched, answered 404 as Synapse) and remote_media_download_burst_count / _per_second (the
bytes one client address may have fetched, 429 once spent; cached media is still served).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.federation.harness import FederatingServer, FederationCA, federating, register
from tests.federation.media_fakes import MediaFake, download, thumbnail
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
    ) as running:
        yield running


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


def test_fetching_past_the_byte_budget_is_rate_limited(
    server: FederatingServer, test_ca: FederationCA, tmp_path_factory: pytest.TempPathFactory
) -> None:
    carol = register(server, "carol")
    with MediaFake.running(test_ca, tmp_path_factory.mktemp("origin")) as origin:
        assert isinstance(origin, MediaFake)
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
