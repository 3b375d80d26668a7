"""Server keys between real servers over TLS: a notary fetches another server's keys from
it, checks and caches them (and still vouches for them once that server is down); a server
that trusts a key server checks its co-signature; a forged key answer is refused.

Servers are `localhost:<port>` on loopback, so each allows loopback addresses for outbound
federation (ip_range_whitelist)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from ranvier.protocol.server_keys import build_key_response, parse_key_response
from ranvier.protocol.signing import verify_json
from ranvier.protocol.signing_keys import ServerSigningKey, parse_signing_key_file
from tests.federation.conftest import ServerPair, federating_pair
from tests.federation.harness import FederatingServer, FederationCA, federating
from tests.integration.homeserver import free_port

LOOPBACK = {"ip_range_whitelist": ["127.0.0.0/8", "::1/128"]}
DAY_MS = 86_400_000

two_servers = federating_pair(**LOOPBACK)


def signing_key(server: FederatingServer) -> ServerSigningKey:
    config = yaml.safe_load(server.config_path.read_text())
    path = server.config_path.parent / config["signing_key_path"]
    return parse_signing_key_file(path.read_text())[0]


def notary_answer(notary: FederatingServer, server_name: str) -> list[dict[str, Any]]:
    reply = notary.request("GET", f"/_matrix/key/v2/query/{server_name}")
    assert reply.status == 200, reply.body
    answers: list[dict[str, Any]] = reply.json()["server_keys"]
    return answers


def check_vouched(
    answer: dict[str, Any], origin: FederatingServer, notary: FederatingServer
) -> None:
    """`answer` is `origin`'s own key response, co-signed by `notary`."""
    key = signing_key(origin)
    keys = parse_key_response(
        answer,
        origin.server_name,
        received_ts=int(time.time() * 1000),
        requested_key_ids=[key.key_id],
    )
    assert bytes(keys.verify_keys[key.key_id]) == bytes(key.verify_key)
    notary_key = signing_key(notary)
    verify_json(answer, notary.server_name, {notary_key.key_id: notary_key.verify_key})


def test_a_notary_fetches_checks_and_cosigns_another_servers_keys(
    two_servers: ServerPair,
) -> None:
    first, second = two_servers
    for notary, origin in ((first, second), (second, first)):
        [answer] = notary_answer(notary, origin.server_name)
        check_vouched(answer, origin, notary)
        assert answer["valid_until_ts"] > int(time.time() * 1000) + DAY_MS - 60_000
        # the POST form, asking for the key by ID
        key_id = signing_key(origin).key_id
        reply = notary.request(
            "POST",
            "/_matrix/key/v2/query",
            {"server_keys": {origin.server_name: {key_id: {}}}},
        )
        assert reply.status == 200, reply.body
        [answer] = reply.json()["server_keys"]
        check_vouched(answer, origin, notary)


def test_cached_keys_are_vouched_for_after_the_server_stops_and_trusted_notaries_are_asked(
    two_servers: ServerPair, test_ca: FederationCA, tmp_path: Path
) -> None:
    notary = two_servers.first
    database = {"name": "sqlite3", "args": {"database": str(tmp_path / "c.db")}}
    with federating(tmp_path / "c", database, test_ca, **LOOPBACK) as origin:
        [answer] = notary_answer(notary, origin.server_name)
        check_vouched(answer, origin, notary)
    # the origin is gone: the notary answers from its database
    [answer] = notary_answer(notary, origin.server_name)
    check_vouched(answer, origin, notary)

    # a server trusting that notary with its key gets the gone server's keys through it
    notary_key = signing_key(notary)
    trusting = {
        **LOOPBACK,
        "trusted_key_servers": [
            {
                "server_name": notary.server_name,
                "verify_keys": {notary_key.key_id: notary_key.verify_key_base64},
            }
        ],
    }
    database = {"name": "sqlite3", "args": {"database": str(tmp_path / "d.db")}}
    with federating(tmp_path / "d", database, test_ca, **trusting) as trusting_server:
        [answer] = notary_answer(trusting_server, origin.server_name)
        check_vouched(answer, origin, trusting_server)
        # it came through the notary, whose signature is still on it
        assert notary.server_name in answer["signatures"]

    # the same notary named with a key it does not sign with: its answers are refused
    impostor = ServerSigningKey.from_seed(b"\x31" * 32, notary_key.key_id.partition(":")[2])
    distrusting = {
        **LOOPBACK,
        "trusted_key_servers": [
            {
                "server_name": notary.server_name,
                "verify_keys": {impostor.key_id: impostor.verify_key_base64},
            }
        ],
    }
    database = {"name": "sqlite3", "args": {"database": str(tmp_path / "e.db")}}
    with federating(tmp_path / "e", database, test_ca, **distrusting) as distrusting_server:
        assert notary_answer(distrusting_server, origin.server_name) == []


# -- a server of our own making, serving whatever key answer a test gives it over TLS


class KeyServer:
    """`localhost:<port>` over HTTPS with a test-CA certificate, answering
    GET /_matrix/key/v2/server with `answer(server_name)`."""

    def __init__(self, ca: FederationCA) -> None:
        self.port = free_port()
        self.server_name = f"localhost:{self.port}"
        self.key = ServerSigningKey.generate("fake")
        self.answer: Callable[[str], Any] = lambda name: {}
        self._ca = ca
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def keys(request: web.Request) -> web.Response:
            return web.json_response(self.answer(self.server_name))

        app = web.Application()
        app.router.add_get("/_matrix/key/v2/server", keys)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def honest(self, server_name: str) -> dict[str, Any]:
        return build_key_response(server_name, self.key, {}, int(time.time() * 1000) + DAY_MS)


@pytest_asyncio.fixture(loop_scope="function")
async def key_server(test_ca: FederationCA) -> AsyncIterator[KeyServer]:
    server = KeyServer(test_ca)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _forged(server: KeyServer, change: str) -> Callable[[str], dict[str, Any]]:
    def answer(server_name: str) -> dict[str, Any]:
        response = server.honest(server_name)
        if change == "unsigned":
            del response["signatures"]
        elif change == "tampered":
            response["valid_until_ts"] += 1
        elif change == "other server":
            response = server.honest("elsewhere.example")
        elif change == "signed by another key":
            other = ServerSigningKey.generate("fake")
            response = build_key_response(server_name, other, {}, response["valid_until_ts"])
            response["verify_keys"] = server.honest(server_name)["verify_keys"]
        return response

    return answer


@pytest.mark.parametrize(
    "change", ["unsigned", "tampered", "other server", "signed by another key"]
)
async def test_a_forged_key_answer_is_refused(
    two_servers: ServerPair, key_server: KeyServer, change: str
) -> None:
    notary = two_servers.second
    key_server.answer = _forged(key_server, change)
    answers = await asyncio.to_thread(notary_answer, notary, key_server.server_name)
    assert answers == []
    # the same server answering honestly is vouched for: the refusal was the forgery's
    key_server.answer = key_server.honest
    [answer] = await asyncio.to_thread(notary_answer, notary, key_server.server_name)
    assert answer["verify_keys"] == {
        key_server.key.key_id: {"key": key_server.key.verify_key_base64}
    }
