"""End-to-end encryption keys: spec client-server-api "End-to-End Encryption" (keys.yaml,
cross_signing.yaml)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.account import require_same_user
from ranvier.errors import MatrixError
from ranvier.http.json import json_response, read_json_object
from ranvier.http.params import required_query_string
from ranvier.services.accounts import AccountService
from ranvier.services.device_lists import DeviceListService
from ranvier.services.e2e_keys import E2eKeyService, parse_upload
from ranvier.services.uia import UserInteractiveAuth

KEYS = "/_matrix/client/v3/keys"


def _user_id_map(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{name}'")
    if not isinstance(value, dict):
        raise MatrixError(400, "M_BAD_JSON", f"'{name}' must be an object keyed by user ID")
    for user_id in value:
        if not user_id.startswith("@") or ":" not in user_id:
            raise MatrixError(400, "M_INVALID_PARAM", f"{user_id!r} in '{name}' is not a user ID")
    return value


def parse_query(body: dict[str, Any]) -> dict[str, list[str]]:
    """`device_keys` of /keys/query: user ID -> device IDs (empty: all of them)."""
    wanted = _user_id_map(body, "device_keys")
    for user_id, device_ids in wanted.items():
        if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
            raise MatrixError(400, "M_BAD_JSON", f"device_keys.{user_id} must be a list of IDs")
    return wanted


def parse_claim(body: dict[str, Any]) -> dict[str, dict[str, str]]:
    """`one_time_keys` of /keys/claim: user ID -> device ID -> algorithm."""
    wanted = _user_id_map(body, "one_time_keys")
    for user_id, by_device in wanted.items():
        if not isinstance(by_device, dict) or not all(
            isinstance(algorithm, str) for algorithm in by_device.values()
        ):
            raise MatrixError(
                400, "M_BAD_JSON", f"one_time_keys.{user_id} must map device IDs to algorithms"
            )
    return wanted


class KeyEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        keys: E2eKeyService,
        device_lists: DeviceListService,
        accounts: AccountService,
        uia: UserInteractiveAuth,
    ) -> None:
        self._auth = auth
        self._keys = keys
        self._device_lists = device_lists
        self._accounts = accounts
        self._uia = uia

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(KEYS + "/upload", self.upload),
            web.post(KEYS + "/query", self.query),
            web.post(KEYS + "/claim", self.claim),
            web.get(KEYS + "/changes", self.changes),
            web.post(KEYS + "/device_signing/upload", self.upload_cross_signing_keys),
            web.post(KEYS + "/signatures/upload", self.upload_signatures),
        ]

    async def upload(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/upload"""
        requester = await self._auth.require_user(request, allow_guest=True)
        upload = parse_upload(await read_json_object(request))
        return json_response(
            await self._keys.upload(requester.user_id, requester.device_id, upload)
        )

    async def query(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/query"""
        requester = await self._auth.require_user(request, allow_guest=True)
        wanted = parse_query(await read_json_object(request))
        return json_response(await self._keys.query(requester.user_id, wanted))

    async def claim(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/claim"""
        await self._auth.require_user(request, allow_guest=True)
        wanted = parse_claim(await read_json_object(request))
        return json_response(await self._keys.claim(wanted))

    async def changes(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/keys/changes"""
        requester = await self._auth.require_user(request, allow_guest=True)
        from_token = required_query_string(request, "from")
        to_token = required_query_string(request, "to")
        return json_response(
            await self._device_lists.keys_changes(requester.user_id, from_token, to_token)
        )

    async def upload_cross_signing_keys(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/device_signing/upload"""
        requester = await self._auth.require_user(request)
        body = await read_json_object(request)
        keys, needs_auth = await self._keys.check_cross_signing_upload(requester.user_id, body)
        if not needs_auth:
            await self._keys.upload_cross_signing_keys(requester.user_id, keys)
            return json_response({})
        auth = await self._uia.authenticate(
            body,
            self._accounts.reauth_flows(),
            operation=f"POST {KEYS}/device_signing/upload {requester.user_id}",
        )
        require_same_user(auth, requester)
        await self._keys.upload_cross_signing_keys(requester.user_id, keys)
        await self._uia.operation_completed(auth)
        return json_response({})

    async def upload_signatures(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/signatures/upload"""
        requester = await self._auth.require_user(request)
        body = await read_json_object(request)
        return json_response(await self._keys.upload_signatures(requester.user_id, body))
