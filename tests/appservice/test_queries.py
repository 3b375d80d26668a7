"""Alias and user queries (spec: application-service-api "Querying"): a local alias or user
nobody created, in a service's namespace, is asked of the service, which may create it
there and then; over HTTP on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.appservice.fake_appservice import FakeAppService, Received
from tests.integration.client import request
from tests.integration.homeserver import RunningServer, free_port, serving
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, Session, authed, register

SERVER = "test.localhost"
APP = "/_matrix/app/v1"


def as_headers(appservice: FakeAppService) -> dict[str, str]:
    return {"Authorization": f"Bearer {appservice.as_token}"}


def queries_of(appservice: FakeAppService, path: str) -> list[Received]:
    return [r for r in appservice.requests if r.method == "GET" and r.path == path]


def unique(server: RunningServer, name: str) -> str:
    """`name` made this server's own: the module's service is shared by both engines' servers
    and records what each asks."""
    return f"{name}_{server.url.rsplit(':', 1)[1]}"


def create_room(server: RunningServer, creator: Session) -> str:
    reply = authed(creator, "POST", server.url + CLIENT + "/createRoom", {"preset": "public_chat"})
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def provide_alias(
    server: RunningServer, appservice: FakeAppService, alias: str, room_id: str
) -> None:
    """Script the service to create `alias` -> `room_id` (as itself) when asked for it."""

    def answer(_received: Received) -> tuple[int, Any]:
        reply = request(
            "PUT",
            server.url + CLIENT + "/directory/room/" + quote(alias),
            {"room_id": room_id},
            as_headers(appservice),
        )
        assert reply.status == 200, reply.body
        return 200, {}

    appservice.answers[("GET", f"{APP}/rooms/{alias}")] = answer


def resolve(server: RunningServer, session: Session, alias: str) -> Any:
    return authed(session, "GET", server.url + CLIENT + "/directory/room/" + quote(alias))


def test_an_unknown_alias_in_the_namespace_is_created_by_the_service(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server, alice)
    alias = f"#{unique(server, '_fake_portal')}:{SERVER}"
    provide_alias(server, appservice, alias, room_id)

    reply = resolve(server, alice, alias)

    assert reply.status == 200, reply.body
    assert reply.json()["room_id"] == room_id
    (query,) = queries_of(appservice, f"{APP}/rooms/{alias}")
    assert query.authorization == f"Bearer {appservice.hs_token}"
    # known now: asked no more
    assert resolve(server, alice, alias).json()["room_id"] == room_id
    assert len(queries_of(appservice, f"{APP}/rooms/{alias}")) == 1


def test_joining_by_an_unknown_alias_asks_the_service(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server, alice)
    alias = f"#{unique(server, '_fake_joined')}:{SERVER}"
    provide_alias(server, appservice, alias, room_id)
    bob = register(server.url, "bob_joins")

    reply = authed(bob, "POST", server.url + CLIENT + "/join/" + quote(alias), {})

    assert reply.status == 200, reply.body
    assert reply.json()["room_id"] == room_id
    assert len(queries_of(appservice, f"{APP}/rooms/{alias}")) == 1
    members = authed(bob, "GET", server.url + CLIENT + f"/rooms/{room_id}/joined_members")
    assert bob.user_id in members.json()["joined"]


def test_an_alias_the_service_does_not_provide_is_not_found(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    # the fake answers 404 to what it is not told; 200 here, but creates nothing
    refused = f"#{unique(server, '_fake_refused')}:{SERVER}"
    claimed = f"#{unique(server, '_fake_claimed')}:{SERVER}"
    appservice.answers[("GET", f"{APP}/rooms/{claimed}")] = lambda _r: (200, {})

    for alias in (refused, claimed):
        reply = resolve(server, alice, alias)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), reply.body
        assert len(queries_of(appservice, f"{APP}/rooms/{alias}")) == 1
    join = authed(alice, "POST", server.url + CLIENT + "/join/" + quote(refused), {})
    assert (join.status, join.errcode) == (404, "M_NOT_FOUND"), join.body


def test_an_alias_outside_every_namespace_is_not_asked(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    alias = f"#someone_elses:{SERVER}"
    reply = resolve(server, alice, alias)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    assert not [
        r
        for r in appservice.requests
        if r.path.startswith(f"{APP}/rooms/") and "someone_elses" in r.path
    ]


def test_inviting_an_unknown_namespaced_user_asks_the_service_first(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server, alice)
    localpart = unique(server, "_fake_puppet")
    puppet = f"@{localpart}:{SERVER}"

    def create_puppet(_received: Received) -> tuple[int, Any]:
        # the service registers its puppet and names it before answering
        reply = request(
            "POST",
            server.url + CLIENT + "/register",
            {"type": "m.login.application_service", "username": localpart},
            as_headers(appservice),
        )
        assert reply.status == 200, reply.body
        reply = request(
            "PUT",
            server.url + CLIENT + f"/profile/{quote(puppet)}/displayname?user_id={quote(puppet)}",
            {"displayname": "Puppet from the bridge"},
            as_headers(appservice),
        )
        assert reply.status == 200, reply.body
        return 200, {}

    appservice.answers[("GET", f"{APP}/users/{puppet}")] = create_puppet

    reply = authed(
        alice, "POST", server.url + CLIENT + f"/rooms/{room_id}/invite", {"user_id": puppet}
    )

    assert reply.status == 200, reply.body
    (query,) = queries_of(appservice, f"{APP}/users/{puppet}")
    assert query.authorization == f"Bearer {appservice.hs_token}"
    # the invite was made after the service answered: it carries the name given meanwhile
    member = authed(
        alice, "GET", server.url + CLIENT + f"/rooms/{room_id}/state/m.room.member/{puppet}"
    )
    assert member.json() == {"membership": "invite", "displayname": "Puppet from the bridge"}


def test_a_direct_chat_created_with_an_unknown_puppet_asks_the_service_first(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    # how clients open a direct chat: createRoom with `invite`, not /invite
    localpart = unique(server, "_fake_dm")
    puppet = f"@{localpart}:{SERVER}"
    registered: list[int] = []

    def create_puppet(_received: Received) -> tuple[int, Any]:
        reply = request(
            "POST",
            server.url + CLIENT + "/register",
            {"type": "m.login.application_service", "username": localpart},
            as_headers(appservice),
        )
        registered.append(reply.status)
        return 200, {}

    appservice.answers[("GET", f"{APP}/users/{puppet}")] = create_puppet

    reply = authed(
        alice,
        "POST",
        server.url + CLIENT + "/createRoom",
        {"preset": "trusted_private_chat", "invite": [puppet], "is_direct": True},
    )

    assert reply.status == 200, reply.body
    assert len(queries_of(appservice, f"{APP}/users/{puppet}")) == 1
    assert registered == [200]
    room_id = reply.json()["room_id"]
    member = authed(
        alice, "GET", server.url + CLIENT + f"/rooms/{room_id}/state/m.room.member/{puppet}"
    )
    assert member.json()["membership"] == "invite"


def test_inviting_users_the_services_cannot_provide_asks_nobody_or_goes_ahead(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server, alice)
    known = register(server.url, "carol_known")
    outside = f"@nobody_here:{SERVER}"
    refused = f"@_fake_refused:{SERVER}"  # in the namespace; the fake answers 404
    for target in (known.user_id, outside, refused):
        reply = authed(
            alice, "POST", server.url + CLIENT + f"/rooms/{room_id}/invite", {"user_id": target}
        )
        # as Synapse: the invite stands whatever the service says
        assert reply.status == 200, reply.body
    asked = [r.path for r in appservice.requests if r.path.startswith(f"{APP}/users/")]
    assert f"{APP}/users/{refused}" in asked
    assert f"{APP}/users/{known.user_id}" not in asked
    assert f"{APP}/users/{outside}" not in asked
    # the service's own bot is never asked about
    authed(
        alice,
        "POST",
        server.url + CLIENT + f"/rooms/{room_id}/invite",
        {"user_id": f"@_fake_bot:{SERVER}"},
    )
    assert f"{APP}/users/@_fake_bot:{SERVER}" not in [r.path for r in appservice.requests]


@pytest.fixture(scope="module")
def dead_server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    """A server whose registered service listens nowhere (its fake was never started)."""
    directory: Path = tmp_path_factory.mktemp("dead")
    dead = FakeAppService(id="dead_bridge", user_regex="@_dead_.*", alias_regex="#_dead_.*")
    registration = directory / "dead.yaml"
    registration.write_text(
        yaml.safe_dump({**dead.registration(), "url": f"http://127.0.0.1:{free_port()}"})
    )
    with serving(
        directory,
        module_database,
        **REGISTRATION_CONFIG,
        app_service_config_files=[str(registration)],
    ) as running:
        yield running


def test_a_dead_service_leaves_lookups_as_they_were(dead_server: RunningServer) -> None:
    dave = register(dead_server.url, "dave")
    reply = resolve(dead_server, dave, f"#_dead_portal:{SERVER}")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), reply.body
    room_id = create_room(dead_server, dave)
    reply = authed(
        dave,
        "POST",
        dead_server.url + CLIENT + f"/rooms/{room_id}/invite",
        {"user_id": f"@_dead_puppet:{SERVER}"},
    )
    assert reply.status == 200, reply.body
