"""Third-party networks through application services (spec: client-server-api and
application-service-api "Third-party Networks"): two bridges speaking the same protocol,
their metadata merged, lookups passed through and concatenated, failures and malformed
answers left out; over HTTP on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.appservice.fake_appservice import FakeAppService, Received
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, Session, authed, register

APP = "/_matrix/app/v1"

GAME_METADATA = {
    "user_fields": ["network", "nickname"],
    "location_fields": ["network", "channel"],
    "icon": "mxc://example.org/game",
    "field_types": {
        "network": {"regexp": "[a-z]+", "placeholder": "libera"},
        "nickname": {"regexp": ".+", "placeholder": "someone"},
        "channel": {"regexp": "#.+", "placeholder": "#matrix"},
    },
}


# both take module_database so that each engine's server gets its own, whose requests it
# alone records


@pytest.fixture(scope="module")
def bridges(module_database: dict[str, Any]) -> Iterator[tuple[FakeAppService, FakeAppService]]:
    first = FakeAppService(
        id="bridge_one",
        sender_localpart="_one_bot",
        user_regex="@_one_.*",
        alias_regex="#_one_.*",
        protocols=("gamenet", "cached", "flaky", "broken"),
    ).start()
    second = FakeAppService(
        id="bridge_two",
        sender_localpart="_two_bot",
        user_regex="@_two_.*",
        alias_regex="#_two_.*",
        protocols=("gamenet", "flaky"),
    ).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture(scope="module")
def bot(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    """A service that declares no protocol: no bridge."""
    fake = FakeAppService(
        id="plain_bot", sender_localpart="_plain_bot", user_regex="@_plain_.*"
    ).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    bridges: tuple[FakeAppService, FakeAppService],
    bot: FakeAppService,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    registrations = [fake.write_registration(directory) for fake in (*bridges, bot)]
    with serving(
        directory, module_database, **REGISTRATION_CONFIG, app_service_config_files=registrations
    ) as running:
        yield running


@pytest.fixture(scope="module")
def user(server: RunningServer) -> Session:
    return register(server.url, "looker")


def answer(status: int, body: Any) -> Any:
    return lambda _received: (status, body)


def asked(fake: FakeAppService, path: str) -> list[Received]:
    return [r for r in fake.requests if r.method == "GET" and r.path == APP + path]


def get(server: RunningServer, user: Session, path: str) -> Any:
    return authed(user, "GET", server.url + CLIENT + path)


def test_protocol_metadata_merges_the_instances_of_every_bridge(
    server: RunningServer, user: Session, bridges: tuple[FakeAppService, FakeAppService]
) -> None:
    first, second = bridges
    first.answers[("GET", APP + "/thirdparty/protocol/gamenet")] = answer(
        200,
        {
            **GAME_METADATA,
            "instances": [
                {"network_id": "libera", "desc": "Libera", "fields": {"network": "libera"}},
                # no network_id: passed on without an instance_id, as Synapse
                {"desc": "Unnamed", "fields": {}},
                "not an instance",
            ],
        },
    )
    second.answers[("GET", APP + "/thirdparty/protocol/gamenet")] = answer(
        200,
        {
            **GAME_METADATA,
            "icon": "mxc://example.org/other",
            "instances": [{"network_id": "oftc", "desc": "OFTC", "fields": {"network": "oftc"}}],
        },
    )

    reply = get(server, user, "/thirdparty/protocol/gamenet")

    assert reply.status == 200, reply.body
    expected = {
        **GAME_METADATA,  # the first bridge's fields
        "instances": [
            {
                "network_id": "libera",
                "desc": "Libera",
                "fields": {"network": "libera"},
                "instance_id": "bridge_one|libera",
            },
            {"desc": "Unnamed", "fields": {}},
            {
                "network_id": "oftc",
                "desc": "OFTC",
                "fields": {"network": "oftc"},
                "instance_id": "bridge_two|oftc",
            },
        ],
    }
    assert reply.json() == expected
    (request,) = asked(first, "/thirdparty/protocol/gamenet")
    assert request.authorization == f"Bearer {first.hs_token}"
    protocols = get(server, user, "/thirdparty/protocols")
    assert protocols.status == 200
    assert protocols.json()["gamenet"] == expected


def test_metadata_is_reused_for_a_while(
    server: RunningServer, user: Session, bridges: tuple[FakeAppService, FakeAppService]
) -> None:
    first, _ = bridges
    before = len(asked(first, "/thirdparty/protocol/cached"))
    first.answers[("GET", APP + "/thirdparty/protocol/cached")] = answer(
        200, {**GAME_METADATA, "instances": []}
    )
    assert get(server, user, "/thirdparty/protocol/cached").status == 200
    # as Synapse (SyTest relies on it): a later answer changes nothing for now
    first.answers[("GET", APP + "/thirdparty/protocol/cached")] = answer(200, [])
    reply = get(server, user, "/thirdparty/protocol/cached")
    assert (reply.status, reply.json()["instances"]) == (200, [])
    assert len(asked(first, "/thirdparty/protocol/cached")) == before + 1


def test_a_failing_bridge_is_left_out(
    server: RunningServer, user: Session, bridges: tuple[FakeAppService, FakeAppService]
) -> None:
    first, second = bridges
    before = len(asked(first, "/thirdparty/protocol/flaky"))
    first.answers[("GET", APP + "/thirdparty/protocol/flaky")] = answer(500, {"errcode": "M_X"})
    second.answers[("GET", APP + "/thirdparty/protocol/flaky")] = answer(
        200, {**GAME_METADATA, "instances": [{"network_id": "n", "desc": "N", "fields": {}}]}
    )
    reply = get(server, user, "/thirdparty/protocol/flaky")
    assert reply.status == 200, reply.body
    assert [i["instance_id"] for i in reply.json()["instances"]] == ["bridge_two|n"]
    # a failure is not kept: asked again next time
    get(server, user, "/thirdparty/protocol/flaky")
    assert len(asked(first, "/thirdparty/protocol/flaky")) == before + 2


@pytest.mark.parametrize(
    "metadata", [[], {"instances": "many"}, {"user_fields": []}, "text"], ids=repr
)
def test_malformed_metadata_is_an_unknown_protocol(
    server: RunningServer,
    user: Session,
    bridges: tuple[FakeAppService, FakeAppService],
    metadata: Any,
) -> None:
    first, _ = bridges
    first.answers[("GET", APP + "/thirdparty/protocol/broken")] = answer(200, metadata)
    reply = get(server, user, "/thirdparty/protocol/broken")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), reply.body
    protocols = get(server, user, "/thirdparty/protocols")
    assert protocols.status == 200
    assert "broken" not in protocols.json()


def test_an_undeclared_protocol_is_not_found_and_nobody_is_asked(
    server: RunningServer, user: Session, bridges: tuple[FakeAppService, FakeAppService]
) -> None:
    reply = get(server, user, "/thirdparty/protocol/telepathy")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = get(server, user, "/thirdparty/user/telepathy?nickname=x")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    for fake in bridges:
        assert not [r for r in fake.requests if "telepathy" in r.path]


@pytest.mark.parametrize(
    ("kind", "matrix_field", "fields"),
    [
        ("user", "userid", {"network": "libera", "nickname": "bob"}),
        ("location", "alias", {"network": "libera", "channel": "#matrix"}),
    ],
)
def test_lookups_pass_the_fields_and_concatenate_the_results(
    server: RunningServer,
    user: Session,
    bridges: tuple[FakeAppService, FakeAppService],
    kind: str,
    matrix_field: str,
    fields: dict[str, str],
) -> None:
    first, second = bridges
    found_by_first = {
        "protocol": "gamenet",
        "fields": fields,
        matrix_field: "@_one_bob:test.localhost" if kind == "user" else "#_one_m:test.localhost",
    }
    found_by_second = {**found_by_first, matrix_field: "@_two_bob:test.localhost"}
    first.answers[("GET", f"{APP}/thirdparty/{kind}/gamenet")] = answer(
        200,
        [
            found_by_first,
            {"protocol": "gamenet", "fields": fields},  # no Matrix ID: left out
            {"protocol": "gamenet", "fields": "x", matrix_field: "@x:y"},  # left out
        ],
    )
    second.answers[("GET", f"{APP}/thirdparty/{kind}/gamenet")] = answer(200, [found_by_second])

    reply = get(server, user, f"/thirdparty/{kind}/gamenet?{urlencode(fields)}")

    assert reply.status == 200, reply.body
    assert reply.json() == [found_by_first, found_by_second]
    for fake in bridges:
        (request,) = asked(fake, f"/thirdparty/{kind}/gamenet")
        # the fields as the client sent them, never the client's token
        assert request.query == fields
        assert request.authorization == f"Bearer {fake.hs_token}"


def test_a_lookup_nobody_answers_well_is_not_found(
    server: RunningServer, user: Session, bridges: tuple[FakeAppService, FakeAppService]
) -> None:
    first, second = bridges
    first.answers[("GET", f"{APP}/thirdparty/location/flaky")] = answer(200, {"not": "a list"})
    second.answers[("GET", f"{APP}/thirdparty/location/flaky")] = answer(502, {})
    reply = get(server, user, "/thirdparty/location/flaky?channel=%23x")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), reply.body
    assert len(asked(first, "/thirdparty/location/flaky")) == 1
    assert len(asked(second, "/thirdparty/location/flaky")) == 1


@pytest.mark.parametrize(
    ("kind", "matrix_field", "value"),
    [("user", "userid", "@_two_carol:test.localhost"), ("location", "alias", "#_one_r:x")],
)
def test_reverse_lookups_ask_every_bridge(
    server: RunningServer,
    user: Session,
    bridges: tuple[FakeAppService, FakeAppService],
    kind: str,
    matrix_field: str,
    value: str,
) -> None:
    _, second = bridges
    result = {"protocol": "gamenet", "fields": {"network": "oftc"}, matrix_field: value}
    # the first bridge knows nothing (404), the second finds it
    second.answers[("GET", f"{APP}/thirdparty/{kind}")] = answer(200, [result])

    reply = get(server, user, f"/thirdparty/{kind}?{urlencode({matrix_field: value})}")

    assert reply.status == 200, reply.body
    assert reply.json() == [result]
    for fake in bridges:
        (request,) = asked(fake, f"/thirdparty/{kind}")
        assert request.query == {matrix_field: value}


def test_a_service_declaring_no_protocol_is_never_asked(
    server: RunningServer, user: Session, bot: FakeAppService
) -> None:
    get(server, user, "/thirdparty/protocols")
    get(server, user, "/thirdparty/user?userid=%40_plain_x%3Atest.localhost")
    assert not [r for r in bot.requests if r.path.startswith(APP + "/thirdparty")]
