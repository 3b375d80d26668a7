"""Media across servers (issue 18): a user on one server downloads and thumbnails media
uploaded on another through the authenticated client endpoints; the server fetches it over
the federation media endpoints (or the legacy ones, from a server without them), caches it,
and shows it to the admin, who can quarantine and purge it. Both servers of `two_servers`
take each side, so both engines store the cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from tests.federation.conftest import ServerPair, federating_pair
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.media_fakes import (
    ADMIN,
    FEDERATION_MEDIA,
    MediaFake,
    admin_of,
    download,
    image_size,
    png,
    thumbnail,
    upload,
)
from tests.integration.homeserver import free_port
from tests.integration.matrix import CLIENT, Session

MAX_UPLOAD_SIZE = 1024 * 1024

two_servers = federating_pair(max_upload_size=MAX_UPLOAD_SIZE)


@pytest.fixture(scope="module")
def fake(test_ca: FederationCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaFake]:
    with MediaFake.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def admins(two_servers: ServerPair) -> dict[str, Session]:
    return {server.server_name: admin_of(server, "mediaadmin") for server in two_servers}


def both_ways(pair: ServerPair) -> list[tuple[FederatingServer, FederatingServer]]:
    """(origin, fetcher) each way round."""
    return [(pair.first, pair.second), (pair.second, pair.first)]


def media_root(server: FederatingServer) -> Path:
    path = Path(yaml.safe_load(server.config_path.read_text())["media_store_path"])
    return path if path.is_absolute() else server.config_path.parent / path


def status_and_errcode(reply: object) -> tuple[int, str | None]:
    status = reply.status  # type: ignore[attr-defined]
    try:
        return status, reply.errcode  # type: ignore[attr-defined]
    except ValueError:
        return status, None


def test_media_uploaded_on_one_server_is_served_by_the_other(
    two_servers: ServerPair, admins: dict[str, Session]
) -> None:
    for n, (origin, fetcher) in enumerate(both_ways(two_servers)):
        alice = register(origin, f"alice{n}")
        bob = register(fetcher, f"bob{n}")
        data = png(300, 200)
        media_id = upload(origin, alice, data, "image/png", "sunset.png")

        reply = download(fetcher, bob, origin.server_name, media_id)
        assert reply.status == 200, reply.body
        assert reply.body == data
        assert reply.headers["Content-Type"] == "image/png"
        assert 'filename="sunset.png"' in reply.headers["Content-Disposition"]
        # spec: a file name in the path replaces the uploaded one
        reply = download(fetcher, bob, origin.server_name, media_id, suffix="/renamed.png")
        assert (reply.status, reply.body) == (200, data)
        assert 'filename="renamed.png"' in reply.headers["Content-Disposition"]

        # the origin's configured 32x32 crop (default thumbnail_sizes)
        reply = thumbnail(
            fetcher, bob, origin.server_name, media_id, "width=32&height=32&method=crop"
        )
        assert reply.status == 200, reply.body
        assert reply.headers["Content-Type"] == "image/png"
        assert image_size(reply.body) == (32, 32)

        # the fetching server's admin sees the cached copy
        path = f"{ADMIN}/media/{origin.server_name}/{media_id}"
        reply = fetcher.authed(admins[fetcher.server_name], "GET", path)
        assert reply.status == 200, reply.body
        info = reply.json()["media_info"]
        assert info["media_origin"] == origin.server_name
        assert info["media_id"] == media_id
        assert (info["media_length"], info["media_type"]) == (len(data), "image/png")
        assert info["upload_name"] == "sunset.png"
        assert info["quarantined_by"] is None

        # fetched since the freeze (enable_authenticated_media): not on the legacy paths
        reply = download(fetcher, None, origin.server_name, media_id)
        assert status_and_errcode(reply) == (404, "M_NOT_FOUND")


def test_the_federation_endpoints_answer_multipart_with_the_file(
    two_servers: ServerPair, fake: MediaFake
) -> None:
    for n, server in enumerate(two_servers):
        alice = register(server, f"carol{n}")
        data = b"plain text, served to another server"
        media_id = upload(server, alice, data, "text/plain", "note.txt")

        reply = fake.request(server, "GET", f"{FEDERATION_MEDIA}/download/{media_id}")
        assert reply.status == 200, reply.body
        content_type = reply.headers["Content-Type"]
        assert content_type.startswith("multipart/mixed; boundary=")
        message = BytesParser(policy=default_policy).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + reply.body
        )
        metadata, file = list(message.iter_parts())  # type: ignore[attr-defined]
        assert metadata.get_content_type() == "application/json"
        assert metadata.get_payload(decode=True).strip() == b"{}"
        assert file.get_content_type() == "text/plain"
        assert file.get_payload(decode=True) == data

        image_id = upload(server, alice, png(200, 200), "image/png", "square.png")
        query = "width=32&height=32&method=crop"
        reply = fake.request(server, "GET", f"{FEDERATION_MEDIA}/thumbnail/{image_id}?{query}")
        assert reply.status == 200, reply.body
        assert reply.headers["Content-Type"].startswith("multipart/mixed")

        # refusals: unsigned, unknown media, a thumbnail without its size
        reply = server.request("GET", f"{FEDERATION_MEDIA}/download/{media_id}")
        assert reply.status == 401
        reply = fake.request(server, "GET", f"{FEDERATION_MEDIA}/download/doesNotExist")
        assert status_and_errcode(reply) == (404, "M_NOT_FOUND")
        reply = fake.request(server, "GET", f"{FEDERATION_MEDIA}/thumbnail/{image_id}?width=32")
        assert status_and_errcode(reply) == (400, "M_MISSING_PARAM")


def test_concurrent_and_later_requests_fetch_the_file_once(
    two_servers: ServerPair, fake: MediaFake
) -> None:
    for n, fetcher in enumerate(two_servers):
        bob = register(fetcher, f"dave{n}")
        media_id = f"onceOnly{n}"
        data = png(64, 48)
        # slow enough that the concurrent requests all arrive while it is being fetched
        fake.serve_federation_file(media_id, data, "image/png", "once.png", delay=0.5)
        asking = [(fetcher, bob, fake.server_name, media_id)] * 5
        with ThreadPoolExecutor(5) as pool:
            replies = list(pool.map(lambda args: download(*args), asking))
        assert [(r.status, r.body) for r in replies] == [(200, data)] * 5
        for _ in range(2):
            assert download(fetcher, bob, fake.server_name, media_id).body == data
        fetched = fake.requests_for(f"/media/download/{media_id}")
        assert len(fetched) == 1
        # over the authenticated federation endpoint, signed by the fetching server
        assert fetched[0].authorization is not None
        assert f'origin="{fetcher.server_name}"' in fetched[0].authorization


def test_a_server_without_federation_media_is_asked_on_the_legacy_endpoint(
    two_servers: ServerPair, fake: MediaFake
) -> None:
    for n, fetcher in enumerate(two_servers):
        bob = register(fetcher, f"erin{n}")
        media_id = f"legacyOnly{n}"
        data = b"from an older server"
        fake.serve_legacy_file(media_id, data, "text/plain", "old.txt")
        reply = download(fetcher, bob, fake.server_name, media_id)
        assert reply.status == 200, reply.body
        assert reply.body == data
        assert reply.headers["Content-Type"] == "text/plain"
        assert 'filename="old.txt"' in reply.headers["Content-Disposition"]
        asked = fake.requests_for(media_id)
        # the federation endpoint first (the fake answers 404 M_UNRECOGNIZED), then legacy
        assert [r.path.startswith(FEDERATION_MEDIA) for r in asked] == [True, False]
        legacy = asked[1]
        assert legacy.query["allow_remote"] == "false"
        assert legacy.authorization is None

        # thumbnails the same way
        thumb_id = f"legacyThumb{n}"
        small = png(16, 16)
        fake.serve_legacy_thumbnail(thumb_id, small, "image/png")
        reply = thumbnail(
            fetcher, bob, fake.server_name, thumb_id, "width=16&height=16&method=crop"
        )
        assert (reply.status, reply.body) == (200, small)
        asked = fake.requests_for(thumb_id)
        assert [r.path.startswith(FEDERATION_MEDIA) for r in asked] == [True, False]
        assert {k: asked[1].query[k] for k in ("width", "height", "method", "allow_remote")} == {
            "width": "16",
            "height": "16",
            "method": "crop",
            "allow_remote": "false",
        }


def test_a_file_part_that_redirects_is_followed(two_servers: ServerPair, fake: MediaFake) -> None:
    for n, fetcher in enumerate(two_servers):
        bob = register(fetcher, f"ivy{n}")
        media_id = f"redirected{n}"
        data = b"kept on another host"
        fake.serve_redirected_file(media_id, data, "text/plain")
        reply = download(fetcher, bob, fake.server_name, media_id)
        assert reply.status == 200, reply.body
        assert (reply.body, reply.headers["Content-Type"]) == (data, "text/plain")
        followed = fake.requests_for(f"/files/{media_id}")
        # an ordinary GET: the signature is for the origin's federation endpoint only
        assert len(followed) == 1 and followed[0].authorization is None


def test_refusals(two_servers: ServerPair, fake: MediaFake, admins: dict[str, Session]) -> None:
    for n, (origin, fetcher) in enumerate(both_ways(two_servers)):
        bob = register(fetcher, f"frank{n}")
        # unknown at its origin
        reply = download(fetcher, bob, origin.server_name, "doesNotExist")
        assert status_and_errcode(reply) == (404, "M_NOT_FOUND")
        reply = thumbnail(fetcher, bob, origin.server_name, "doesNotExist", "width=8&height=8")
        assert status_and_errcode(reply) == (404, "M_NOT_FOUND")

        # larger than max_upload_size: refused as Synapse refuses it, and not cached
        big_id = f"tooLarge{n}"
        fake.serve_federation_file(big_id, b"x" * (MAX_UPLOAD_SIZE + 1), "text/plain", "big")
        reply = download(fetcher, bob, fake.server_name, big_id)
        assert status_and_errcode(reply) == (502, "M_TOO_LARGE")
        # streamed to a temporary file, which is gone with the refusal
        temporary = media_root(fetcher) / "tmp"
        assert temporary.is_dir() and list(temporary.iterdir()) == []
        path = f"{ADMIN}/media/{fake.server_name}/{big_id}"
        reply = fetcher.authed(admins[fetcher.server_name], "GET", path)
        assert status_and_errcode(reply) == (404, "M_NOT_FOUND")

        # nobody listening there
        down = f"localhost:{free_port()}"
        reply = download(fetcher, bob, down, "anything")
        assert status_and_errcode(reply) == (502, "M_UNKNOWN")

        # slower than timeout_ms
        slow_id = f"slow{n}"
        fake.serve_federation_file(slow_id, b"late", "text/plain", "late.txt", delay=2)
        started = time.monotonic()
        reply = download(fetcher, bob, fake.server_name, slow_id, query="timeout_ms=300")
        assert status_and_errcode(reply) == (502, "M_UNKNOWN")
        assert time.monotonic() - started < 1.8


def test_admin_quarantines_and_purges_cached_remote_media(
    two_servers: ServerPair, admins: dict[str, Session]
) -> None:
    for n, (origin, fetcher) in enumerate(both_ways(two_servers)):
        admin = admins[fetcher.server_name]
        alice = register(origin, f"gina{n}")
        bob = register(fetcher, f"hank{n}")
        data = b"cached, then purged"
        media_id = upload(origin, alice, data, "text/plain", "c.txt")
        assert download(fetcher, bob, origin.server_name, media_id).body == data

        where = f"{origin.server_name}/{media_id}"
        reply = fetcher.authed(admin, "POST", f"{ADMIN}/media/quarantine/{where}", {})
        assert reply.status == 200, reply.body
        reply = download(fetcher, bob, origin.server_name, media_id)
        assert status_and_errcode(reply) == (404, "M_NOT_FOUND")
        info = fetcher.authed(admin, "GET", f"{ADMIN}/media/{where}").json()["media_info"]
        assert info["quarantined_by"] == admin.user_id
        # quarantined media stays known (so it stays refused) through a purge
        now = int(time.time() * 1000)
        reply = fetcher.authed(admin, "POST", f"{ADMIN}/purge_media_cache?before_ts={now + 1}")
        assert reply.status == 200, reply.body
        assert fetcher.authed(admin, "GET", f"{ADMIN}/media/{where}").status == 200

        reply = fetcher.authed(admin, "POST", f"{ADMIN}/media/unquarantine/{where}", {})
        assert reply.status == 200, reply.body
        assert download(fetcher, bob, origin.server_name, media_id).body == data

        # purged: forgotten, and fetched again when next asked for
        now = int(time.time() * 1000)
        reply = fetcher.authed(admin, "POST", f"{ADMIN}/purge_media_cache?before_ts={now + 1}")
        assert reply.status == 200, reply.body
        assert reply.json()["deleted"] >= 1
        reply = fetcher.authed(admin, "GET", f"{ADMIN}/media/{where}")
        assert status_and_errcode(reply) == (404, "M_NOT_FOUND")
        assert download(fetcher, bob, origin.server_name, media_id).body == data
        assert fetcher.authed(admin, "GET", f"{ADMIN}/media/{where}").status == 200

        # a room's quarantine takes the cached remote media its events use, as Synapse
        reply = fetcher.authed(bob, "POST", f"{CLIENT}/createRoom", {})
        assert reply.status == 200, reply.body
        room_id = reply.json()["room_id"]
        message = {"msgtype": "m.file", "body": "c.txt", "url": f"mxc://{where}"}
        send = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{n}"
        assert fetcher.authed(bob, "PUT", send, message).status == 200
        reply = fetcher.authed(admin, "POST", f"{ADMIN}/room/{quote(room_id)}/media/quarantine")
        assert reply.status == 200, reply.body
        assert reply.json()["num_quarantined"] == 1
        reply = download(fetcher, bob, origin.server_name, media_id)
        assert status_and_errcode(reply) == (404, "M_NOT_FOUND")
        reply = fetcher.authed(admin, "POST", f"{ADMIN}/media/unquarantine/{where}", {})
        assert reply.status == 200, reply.body

        # refusals
        reply = fetcher.authed(admin, "POST", f"{ADMIN}/purge_media_cache")
        assert status_and_errcode(reply) == (400, "M_MISSING_PARAM")
        reply = fetcher.authed(admin, "POST", f"{ADMIN}/purge_media_cache?before_ts=1700000000")
        assert status_and_errcode(reply) == (400, "M_INVALID_PARAM")
        reply = fetcher.authed(bob, "POST", f"{ADMIN}/purge_media_cache?before_ts={now}")
        assert status_and_errcode(reply) == (403, "M_FORBIDDEN")
        # deleting is for local media only, as Synapse
        reply = fetcher.authed(admin, "DELETE", f"{ADMIN}/media/{where}")
        assert status_and_errcode(reply) == (400, "M_INVALID_PARAM")


def test_purging_forgets_thumbnails_of_media_never_fetched_whole(
    two_servers: ServerPair, fake: MediaFake, admins: dict[str, Session]
) -> None:
    for n, fetcher in enumerate(two_servers):
        admin = admins[fetcher.server_name]
        bob = register(fetcher, f"jill{n}")
        media_id = f"thumbOnly{n}"
        small = png(24, 24)
        fake.serve_federation_thumbnail(media_id, small, "image/png")
        query = "width=24&height=24&method=scale"
        for _ in range(2):
            reply = thumbnail(fetcher, bob, fake.server_name, media_id, query)
            assert (reply.status, reply.body) == (200, small)
        assert len(fake.requests_for(f"/thumbnail/{media_id}")) == 1

        now = int(time.time() * 1000)
        reply = fetcher.authed(admin, "POST", f"{ADMIN}/purge_media_cache?before_ts={now + 1}")
        assert reply.status == 200, reply.body
        assert reply.json()["deleted"] >= 1
        reply = thumbnail(fetcher, bob, fake.server_name, media_id, query)
        assert (reply.status, reply.body) == (200, small)
        assert len(fake.requests_for(f"/thumbnail/{media_id}")) == 2
