"""What a client sees when this server asks another for a profile or an alias
(services/federation/queries.py), and the profile service's federation switches; the
happy paths over real HTTPS are in tests/federation/test_queries_and_make_join.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.federation.errors import (
    DestinationUnreachable,
    FederationError,
    NotRetrying,
    RemoteRequestFailed,
)
from ranvier.services.federation.queries import DIRECTORY_QUERY, PROFILE_QUERY, RemoteQueries
from ranvier.services.profiles import ProfileService
from ranvier.storage.database import Database
from ranvier.storage.profiles import ProfileStore

REMOTE = "remote.example"
BOB = f"@bob:{REMOTE}"


class FakeClient:
    """Answers every GET with `answer`, or raises it; remembers what was asked."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str, Mapping[str, Any] | None, bool]] = []

    async def get_json(
        self,
        destination: str,
        path: str,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        authenticated: bool = True,
        timeout: float | None = None,
        ignore_backoff: bool = False,
    ) -> Any:
        self.asked.append((destination, path, query, ignore_backoff))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def failed(status: int, errcode: str | None = None, error: str = "") -> RemoteRequestFailed:
    body = {"errcode": errcode, "error": error} if errcode else None
    return RemoteRequestFailed(REMOTE, status, errcode, body)


async def profile_error(answer: Any) -> MatrixError:
    with pytest.raises(MatrixError) as caught:
        await RemoteQueries(FakeClient(answer)).profile(BOB, None)
    return caught.value


async def directory_error(answer: Any) -> MatrixError:
    with pytest.raises(MatrixError) as caught:
        await RemoteQueries(FakeClient(answer)).directory(f"#room:{REMOTE}")
    return caught.value


async def test_profile_query_asks_the_users_server() -> None:
    client = FakeClient({"displayname": "Bob", "m.tz": "Europe/Paris"})
    queries = RemoteQueries(client)
    assert await queries.profile(BOB, None) == {"displayname": "Bob", "m.tz": "Europe/Paris"}
    await queries.profile(BOB, "displayname")
    # a lookup a user waits for is made even while the server is backed off from
    assert client.asked == [
        (REMOTE, PROFILE_QUERY, {"user_id": BOB}, True),
        (REMOTE, PROFILE_QUERY, {"user_id": BOB, "field": "displayname"}, True),
    ]


@pytest.mark.parametrize(
    ("answer", "status", "errcode"),
    [
        (failed(404, "M_NOT_FOUND", "User does not exist."), 404, "M_NOT_FOUND"),
        (failed(404), 404, "M_NOT_FOUND"),
        (
            failed(403, "M_FORBIDDEN", "Profile lookup over federation is disabled"),
            403,
            "M_FORBIDDEN",
        ),
        (failed(403), 403, "M_FORBIDDEN"),
        # other answers are not the remote user's to pass on
        (failed(400, "M_INVALID_PARAM"), 502, "M_UNKNOWN"),
        (failed(401, "M_UNAUTHORIZED"), 502, "M_UNKNOWN"),
        (failed(500, "M_UNKNOWN"), 502, "M_UNKNOWN"),
        (DestinationUnreachable(REMOTE, "connection refused"), 502, "M_UNKNOWN"),
        (NotRetrying(REMOTE, 123), 502, "M_UNKNOWN"),
        (FederationError(REMOTE, "not JSON"), 502, "M_UNKNOWN"),
        (["not", "a", "profile"], 502, "M_UNKNOWN"),
        ("nothing", 502, "M_UNKNOWN"),
    ],
)
async def test_profile_query_failures(answer: Any, status: int, errcode: str) -> None:
    error = await profile_error(answer)
    assert (error.status, error.errcode) == (status, errcode)


async def test_a_remote_refusal_keeps_its_message() -> None:
    error = await profile_error(failed(403, "M_FORBIDDEN", "Ask me later"))
    assert error.error == "Ask me later"


async def test_directory_query_asks_the_aliases_server() -> None:
    client = FakeClient({"room_id": "!r:remote.example", "servers": ["remote.example", 7, "b.org"]})
    assert await RemoteQueries(client).directory(f"#room:{REMOTE}") == (
        "!r:remote.example",
        ["remote.example", "b.org"],
    )
    assert client.asked == [(REMOTE, DIRECTORY_QUERY, {"room_alias": f"#room:{REMOTE}"}, True)]


@pytest.mark.parametrize(
    ("answer", "status", "errcode"),
    [
        (failed(404, "M_NOT_FOUND"), 404, "M_NOT_FOUND"),
        (failed(400, "M_INVALID_PARAM"), 502, "M_UNKNOWN"),
        (failed(500), 502, "M_UNKNOWN"),
        (DestinationUnreachable(REMOTE, "timed out"), 502, "M_UNKNOWN"),
        # as Synapse: an answer without a room ID is an alias not found
        ({"servers": ["remote.example"]}, 404, "M_NOT_FOUND"),
        ({"room_id": "!r:remote.example"}, 404, "M_NOT_FOUND"),
        ({"room_id": 5, "servers": []}, 404, "M_NOT_FOUND"),
        ([], 404, "M_NOT_FOUND"),
    ],
)
async def test_directory_query_failures(answer: Any, status: int, errcode: str) -> None:
    error = await directory_error(answer)
    assert (error.status, error.errcode) == (status, errcode)


# -- the profile service's side ---------------------------------------------------------


def profiles(database: Database, remote: FakeClient, **config: Any) -> ProfileService:
    settings = HomeserverConfig(
        server_name="test.localhost", signing_key_path="/nonexistent.key", **config
    )

    async def share_nothing(requester: str, target: str) -> bool:
        return False

    return ProfileService(
        settings, ProfileStore(database), share_nothing, remote=RemoteQueries(remote).profile
    )


async def test_profile_lookup_over_federation_can_be_refused(database: Database) -> None:
    service = profiles(database, FakeClient({}), allow_profile_lookup_over_federation=False)
    with pytest.raises(MatrixError) as caught:
        await service.federation_query("@alice:test.localhost", None)
    assert (caught.value.status, caught.value.errcode) == (403, "M_FORBIDDEN")


async def test_remote_lookups_honour_shared_rooms_before_asking(database: Database) -> None:
    client = FakeClient({"displayname": "Bob"})
    service = profiles(database, client, limit_profile_requests_to_users_who_share_rooms=True)
    for lookup in (
        service.get_profile(BOB, "@alice:test.localhost"),
        service.get_field(BOB, "displayname", "@alice:test.localhost"),
    ):
        with pytest.raises(MatrixError) as caught:
            await lookup
        assert (caught.value.status, caught.value.errcode) == (403, "M_FORBIDDEN")
    assert client.asked == []
    # without a requester (no token, auth not required) the lookup is not limited
    assert await service.get_profile(BOB, None) == {"displayname": "Bob"}


async def test_remote_fields(database: Database) -> None:
    service = profiles(database, FakeClient({"displayname": "Bob"}))
    assert await service.get_field(BOB, "displayname", None) == {"displayname": "Bob"}
    # what the remote server left out: as for local users, {} for the two standard fields
    service = profiles(database, FakeClient({}))
    assert await service.get_field(BOB, "avatar_url", None) == {}
    with pytest.raises(MatrixError) as caught:
        await service.get_field(BOB, "com.example.x", None)
    assert (caught.value.status, caught.value.errcode) == (404, "M_NOT_FOUND")
