"""The media options that change behaviour, on both engines: enable_authenticated_media
off and then on (media from before the freeze stays reachable unauthenticated),
dynamic_thumbnails with custom thumbnail_sizes, rc_media_create and
unused_expiration_time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.client import request
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, login, register
from tests.integration.media_helpers import download, image_bytes, open_image, thumbnail, uploaded

SWITCHES: dict[str, Any] = {
    **REGISTRATION_CONFIG,
    "enable_authenticated_media": False,
    "dynamic_thumbnails": True,
    "thumbnail_sizes": [{"width": 50, "height": 40, "method": "scale"}],
    "rc_media_create": {"per_second": 0.001, "burst_count": 2},
    "max_pending_media_uploads": 100,
    "unused_expiration_time": "1500ms",
}


@pytest.fixture(scope="module")
def config(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[tuple[Path, int]]:
    port = free_port()
    yield write_test_config(tmp_path_factory.mktemp("hs"), module_database, port, **SWITCHES), port


@pytest.fixture(scope="module")
def server(config: tuple[Path, int]) -> Iterator[RunningServer]:
    running = start_server(*config)
    yield running
    if running.process.poll() is None:
        assert running.stop() == 0, running.log()


def test_dynamic_thumbnails_are_the_size_asked_for(server: RunningServer, alice: Session) -> None:
    media = uploaded(server.url, alice, image_bytes("PNG", 1000, 800), "image/png")
    for query, size in (
        ("width=123&height=45&method=crop", (123, 45)),
        ("width=200&height=200&method=scale", (200, 160)),
        # never upscaled
        ("width=3000&height=100&method=crop", (1000, 33)),
    ):
        reply = thumbnail(server.url, alice, *media, query)
        assert reply.status == 200, reply.body
        assert open_image(reply.body).size == size, query


def test_rc_media_create_limits_creating_media_ids(server: RunningServer) -> None:
    bob = register(server.url, "bob")
    url = server.url + "/_matrix/media/v1/create"
    assert [authed(bob, "POST", url, {}).status for _ in range(2)] == [200, 200]
    reply = authed(bob, "POST", url, {})
    assert (reply.status, reply.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert int(reply.headers["Retry-After"]) >= 1
    # per user
    carol = register(server.url, "carol")
    assert authed(carol, "POST", url, {}).status == 200


def test_a_created_media_id_expires_unused(server: RunningServer) -> None:
    dave = register(server.url, "dave")
    before = int(time.time() * 1000)
    reply = authed(dave, "POST", server.url + "/_matrix/media/v1/create", {})
    body = reply.json()
    assert before + 1500 <= body["unused_expires_at"] <= int(time.time() * 1000) + 1500
    server_name, media_id = body["content_uri"][len("mxc://") :].split("/")
    time.sleep(1.6)
    url = f"{server.url}/_matrix/media/v3/upload/{server_name}/{media_id}"
    reply = request("PUT", url, b"too late", {**dave.headers, "Content-Type": "text/plain"})
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = download(server.url, dave, server_name, media_id, query="timeout_ms=5000")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


def test_media_from_before_the_freeze_stays_reachable_unauthenticated(
    config: tuple[Path, int], server: RunningServer, alice: Session
) -> None:
    data = image_bytes("PNG", 300, 300)
    before = uploaded(server.url, alice, data, "image/png")
    # with enable_authenticated_media off, both endpoint families serve it
    assert download(server.url, None, *before).body == data
    assert download(server.url, alice, *before).body == data
    assert server.stop() == 0, server.log()

    path, port = config
    raw = yaml.safe_load(path.read_text())
    raw["enable_authenticated_media"] = True
    path.write_text(yaml.safe_dump(raw))
    frozen = start_server(path, port)
    try:
        session = login(frozen.url, "alice")
        after = uploaded(frozen.url, session, data, "image/png")
        reply = download(frozen.url, None, *before)
        assert (reply.status, reply.body) == (200, data)
        assert reply.headers["Content-Disposition"] == "inline"
        reply = thumbnail(frozen.url, None, *before, "width=32&height=32&method=scale")
        assert reply.status == 200
        # uploaded since the freeze: only with an access token
        reply = download(frozen.url, None, *after)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
        reply = thumbnail(frozen.url, None, *after, "width=32&height=32&method=scale")
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
        assert download(frozen.url, session, *after).body == data
    finally:
        assert frozen.stop() == 0, frozen.log()
