"""The server key API: spec server-server-api "Retrieving server keys" (keys_server.yaml,
keys_query.yaml). Served on listeners with the `federation` or `keys` resource;
unauthenticated, as every answer carries its own signatures."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from pydantic import Field

from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.http.params import parse_int_param
from ranvier.services.federation.keyring import KeyQuery, Keyring


class KeyCriteria(RequestBody):
    minimum_valid_until_ts: int | None = Field(default=None, ge=0, le=2**53 - 1)


class KeyQueryBody(RequestBody):
    # server name -> key ID -> criteria; no key IDs asks for all of the server's keys
    server_keys: dict[str, dict[str, KeyCriteria]]


class KeyEndpoints:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_matrix/key/v2/server", self.get_server_keys),
            web.get("/_matrix/key/v2/server/{keyId}", self.get_server_keys),
            web.get("/_matrix/key/v2/query/{serverName}", self.query_server),
            # deprecated (removed from the spec in v1.1), still asked by older servers
            web.get("/_matrix/key/v2/query/{serverName}/{keyId}", self.query_server),
            web.post("/_matrix/key/v2/query", self.query_servers),
        ]

    async def get_server_keys(self, request: web.Request) -> web.Response:
        """GET /_matrix/key/v2/server (and the deprecated /_matrix/key/v2/server/{keyId},
        which answers the same: all our keys)"""
        return json_response(self._keyring.own_key_response())

    async def query_server(self, request: web.Request) -> web.Response:
        """GET /_matrix/key/v2/query/{serverName} (and /{keyId}, the older form naming one
        key)"""
        raw = request.query.get("minimum_valid_until_ts")
        minimum = None if raw is None else parse_int_param("minimum_valid_until_ts", raw, minimum=0)
        key_id = request.match_info.get("keyId")
        key_ids = frozenset() if key_id is None else frozenset([key_id])
        responses = await self._keyring.notary_query(
            {request.match_info["serverName"]: KeyQuery(key_ids, minimum)}
        )
        return json_response({"server_keys": responses})

    async def query_servers(self, request: web.Request) -> web.Response:
        """POST /_matrix/key/v2/query"""
        body = await read_body(request, KeyQueryBody)
        responses = await self._keyring.notary_query(
            {
                server_name: KeyQuery(frozenset(keys), _latest_minimum(keys.values()))
                for server_name, keys in body.server_keys.items()
            }
        )
        return json_response({"server_keys": responses})


def _latest_minimum(criteria: Iterable[KeyCriteria]) -> int | None:
    """One time for a server's keys: the latest asked for (None: the notary's now)."""
    given = [c.minimum_valid_until_ts for c in criteria if c.minimum_valid_until_ts is not None]
    return max(given, default=None)
