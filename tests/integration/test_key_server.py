"""The server key API over real HTTP, on both engines: what another server fetching our keys
sees (spec server-server-api "Retrieving server keys"), and the notary for our own name."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ranvier.protocol.server_keys import parse_key_response
from ranvier.protocol.signing import verify_json
from ranvier.protocol.signing_keys import ServerSigningKey, parse_signing_key_file
from tests.integration.client import request
from tests.integration.conftest import module_server
from tests.integration.homeserver import (
    RunningServer,
    free_port,
    start_server,
    write_test_config,
)

SERVER_NAME = "test.localhost"
OLD_KEY = ServerSigningKey.from_seed(b"\x07" * 32, "retired")
OLD_EXPIRED_TS = 1_600_000_000_000
TWO_HOURS_MS = 2 * 3600 * 1000

server = module_server(
    key_refresh_interval="2h",
    old_signing_keys={
        OLD_KEY.key_id: {"key": OLD_KEY.verify_key_base64, "expired_ts": OLD_EXPIRED_TS}
    },
)


def signing_key(server: RunningServer) -> ServerSigningKey:
    path = server.config_path.parent / f"{SERVER_NAME}.signing.key"
    return parse_signing_key_file(path.read_text())[0]


def check_own_response(response: dict[str, Any], key: ServerSigningKey) -> None:
    assert response["server_name"] == SERVER_NAME
    assert response["verify_keys"] == {key.key_id: {"key": key.verify_key_base64}}
    assert response["old_verify_keys"] == {
        OLD_KEY.key_id: {"key": OLD_KEY.verify_key_base64, "expired_ts": OLD_EXPIRED_TS}
    }
    verify_json(response, SERVER_NAME, {key.key_id: key.verify_key})
    now = int(time.time() * 1000)
    assert now + TWO_HOURS_MS - 60_000 <= response["valid_until_ts"] <= now + TWO_HOURS_MS


@pytest.mark.parametrize("path", ["/_matrix/key/v2/server", "/_matrix/key/v2/server/ed25519:x"])
def test_published_keys_are_signed_and_valid_for_the_refresh_interval(
    server: RunningServer, path: str
) -> None:
    reply = request("GET", server.url + path)
    assert reply.status == 200
    response = reply.json()
    key = signing_key(server)
    check_own_response(response, key)
    # what a fetching server's check makes of it
    keys = parse_key_response(
        response, SERVER_NAME, received_ts=int(time.time() * 1000), requested_key_ids=[key.key_id]
    )
    assert keys.old_verify_keys[OLD_KEY.key_id].expired_ts == OLD_EXPIRED_TS


def test_notary_answers_for_our_own_name(server: RunningServer) -> None:
    key = signing_key(server)
    reply = request("GET", server.url + f"/_matrix/key/v2/query/{SERVER_NAME}")
    assert reply.status == 200
    [response] = reply.json()["server_keys"]
    check_own_response(response, key)

    in_a_day = int(time.time() * 1000) + 86_400_000
    reply = request(
        "POST",
        server.url + "/_matrix/key/v2/query",
        {"server_keys": {SERVER_NAME: {key.key_id: {"minimum_valid_until_ts": in_a_day}}}},
    )
    assert reply.status == 200
    [response] = reply.json()["server_keys"]
    check_own_response(response, key)
    reply = request(
        "GET",
        server.url + f"/_matrix/key/v2/query/{SERVER_NAME}?minimum_valid_until_ts={in_a_day}",
    )
    assert reply.status == 200
    [response] = reply.json()["server_keys"]
    check_own_response(response, key)
    # the older form naming one key, which SyTest and older servers still send
    reply = request(
        "GET",
        server.url + f"/_matrix/key/v2/query/{SERVER_NAME}/{key.key_id}"
        f"?minimum_valid_until_ts={in_a_day}",
    )
    assert reply.status == 200
    [response] = reply.json()["server_keys"]
    check_own_response(response, key)


def test_notary_leaves_out_servers_it_cannot_vouch_for(server: RunningServer) -> None:
    for name in ("not a server name", "127.0.0.1:1"):
        reply = request("POST", server.url + "/_matrix/key/v2/query", {"server_keys": {name: {}}})
        assert reply.status == 200, reply.body
        assert reply.json() == {"server_keys": []}
    reply = request("POST", server.url + "/_matrix/key/v2/query", {"server_keys": {}})
    assert reply.json() == {"server_keys": []}
    reply = request("GET", server.url + "/_matrix/key/v2/query/127.0.0.1:1")
    assert reply.status == 200
    assert reply.json() == {"server_keys": []}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (b"{not json", "M_NOT_JSON"),
        (b"[]", "M_BAD_JSON"),
        (b'{"server_keys": []}', "M_BAD_JSON"),
        (b'{"server_keys": {"a.example": []}}', "M_BAD_JSON"),
        (b'{"server_keys": {"a.example": {"ed25519:a": 5}}}', "M_BAD_JSON"),
        (
            b'{"server_keys": {"a.example": {"ed25519:a": {"minimum_valid_until_ts": "1"}}}}',
            "M_BAD_JSON",
        ),
        (
            b'{"server_keys": {"a.example": {"ed25519:a": {"minimum_valid_until_ts": -1}}}}',
            "M_BAD_JSON",
        ),
        (b"{}", "M_MISSING_PARAM"),
    ],
)
def test_bad_query_bodies_are_refused(server: RunningServer, body: bytes, errcode: str) -> None:
    reply = request(
        "POST",
        server.url + "/_matrix/key/v2/query",
        body,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 400
    assert reply.errcode == errcode


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", "99999999999999999999"])
def test_bad_minimum_valid_until_ts_is_refused(server: RunningServer, value: str) -> None:
    reply = request(
        "GET", server.url + f"/_matrix/key/v2/query/{SERVER_NAME}?minimum_valid_until_ts={value}"
    )
    assert reply.status == 400
    assert reply.errcode == "M_INVALID_PARAM"


def test_the_keys_resource_alone_serves_the_key_api(tmp_path: Path) -> None:
    database = {"name": "sqlite3", "args": {"database": str(tmp_path / "homeserver.db")}}
    client_port, keys_port = free_port(), free_port()
    config = write_test_config(
        tmp_path,
        database,
        client_port,
        listeners=[
            {"port": client_port, "resources": [{"names": ["client"]}]},
            {"port": keys_port, "resources": [{"names": ["keys"]}]},
        ],
    )
    running = start_server(config, client_port)
    try:
        keys_url = f"http://127.0.0.1:{keys_port}"
        reply = request("GET", keys_url + "/_matrix/key/v2/server")
        assert reply.status == 200
        assert reply.json()["server_name"] == SERVER_NAME
        assert request("GET", keys_url + f"/_matrix/key/v2/query/{SERVER_NAME}").status == 200
        assert request("GET", keys_url + "/_matrix/client/versions").status == 404
        # the client resource alone does not serve them
        assert request("GET", running.url + "/_matrix/key/v2/server").status == 404
    finally:
        assert running.stop() == 0
