"""media_retention over real HTTP on both engines: local media nobody fetched for
`local_media_lifetime` is deleted, its row (the admin API's listing) and its file (the
media store on disk), while protected and quarantined media and avatars stay, and media
uploaded since is served. The server checks every second (a lifetime of 2s is
checked four times per lifetime, at most once a second)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from ranvier.config.retention import MediaRetentionConfig
from ranvier.services.media.retention import CHECK_PERIOD_MS, check_period_ms
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    make_admin,
    register,
)
from tests.integration.media_helpers import download, image_bytes, uploaded

ADMIN = "/_synapse/admin/v1"
LIFETIME_S = 2.0

server = module_server(**REGISTRATION_CONFIG, media_retention={"local_media_lifetime": "2s"})


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "mediaadmin")


def listed_media_ids(server: RunningServer, admin: Session, user_id: str) -> set[str]:
    path = f"{server.url}{ADMIN}/users/{quote(user_id, safe='')}/media?limit=100"
    reply = authed(admin, "GET", path)
    assert reply.status == 200, reply.body
    return {m["media_id"] for m in reply.json()["media"]}


def stored_file(server: RunningServer, data: bytes) -> bool:
    """Whether the media store on disk holds a file of these bytes (named by their hash)."""
    digest = hashlib.sha256(data).hexdigest()
    store = server.config_path.parent / "data" / "media_store"
    return any(digest in path.name for path in Path(store).rglob("*") if path.is_file())


def test_the_check_period_follows_short_lifetimes() -> None:
    assert check_period_ms(MediaRetentionConfig(local_media_lifetime=90 * 86_400_000)) == (
        CHECK_PERIOD_MS
    )
    assert check_period_ms(MediaRetentionConfig(remote_media_lifetime=3_600_000)) == 900_000
    assert check_period_ms(MediaRetentionConfig(local_media_lifetime=100)) == 1000


def test_unfetched_local_media_is_deleted_but_protected_media_and_avatars_stay(
    server: RunningServer, admin: Session
) -> None:
    alice = register(server.url, "alice")
    contents = {name: name.encode() * 2000 for name in ("plain", "protected", "quarantined")}
    avatar_bytes = image_bytes("PNG", 32, 32)
    media = {name: uploaded(server.url, alice, data) for name, data in contents.items()}
    avatar = uploaded(server.url, alice, avatar_bytes, "image/png")
    profile = f"{server.url}{CLIENT}/profile/{quote(alice.user_id)}/avatar_url"
    assert (
        authed(alice, "PUT", profile, {"avatar_url": f"mxc://{avatar[0]}/{avatar[1]}"}).status
        == 200
    )
    protect = f"{server.url}{ADMIN}/media/protect/{media['protected'][1]}"
    assert authed(admin, "POST", protect, {}).status == 200
    quarantined = media["quarantined"]
    quarantine = f"{server.url}{ADMIN}/media/quarantine/{quarantined[0]}/{quarantined[1]}"
    assert authed(admin, "POST", quarantine, {}).status == 200
    uploaded_at = time.monotonic()
    assert all(stored_file(server, data) for data in contents.values())

    deadline = uploaded_at + 15
    while media["plain"][1] in listed_media_ids(server, admin, alice.user_id):
        assert time.monotonic() < deadline, "the unfetched media was not deleted"
        time.sleep(0.2)
    assert time.monotonic() - uploaded_at >= LIFETIME_S

    assert download(server.url, alice, *media["plain"]).status == 404
    assert not stored_file(server, contents["plain"])
    left = listed_media_ids(server, admin, alice.user_id)
    assert {media["protected"][1], media["quarantined"][1], avatar[1]} <= left
    assert stored_file(server, contents["protected"])
    assert stored_file(server, contents["quarantined"])
    assert download(server.url, alice, *media["protected"]).status == 200
    assert download(server.url, alice, *avatar).status == 200
    # media uploaded now is served
    fresh = uploaded(server.url, alice, b"fresh" * 100)
    assert download(server.url, alice, *fresh).status == 200
