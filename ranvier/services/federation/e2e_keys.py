"""End-to-end keys across servers (spec: server-server-api "End-to-End Encryption",
"Device Management").

`RemoteE2eKeys` answers the client API's /keys/query and /keys/claim for other servers'
users: the users are grouped per server and the servers asked at once, each within the
client's timeout; a server that fails or is too slow is named in `failures` and the
others' answers are kept. As Synapse, a server we are backing off from is not asked (its
failure is "Not ready for retry"), so one dead server does not slow every query. Device
keys of users we share a room with come from the cached device lists (fetched on first
use); others are asked with POST /user/keys/query.

`FederationKeyService` serves other servers: GET /user/devices/{userId}, POST
/user/keys/query and POST /user/keys/claim, for our own users only. Device display names
are given only with `allow_device_name_lookup_over_federation`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ranvier.errors import MatrixError
from ranvier.federation.client import FederationRequests
from ranvier.federation.errors import FederationError, NotRetrying, RemoteRequestFailed
from ranvier.services.e2e_keys import E2eKeyService
from ranvier.services.federation.device_lists import RemoteDeviceLists, server_of
from ranvier.storage.device_lists import DeviceChangeLog
from ranvier.storage.remote_devices import RemoteDeviceList

logger = logging.getLogger(__name__)

USER_KEYS_QUERY = "/_matrix/federation/v1/user/keys/query"
USER_KEYS_CLAIM = "/_matrix/federation/v1/user/keys/claim"

JsonDict = dict[str, Any]
T = TypeVar("T")


def failure(status: int, message: str) -> JsonDict:
    """A server's entry in `failures` (Synapse's shape, which clients read)."""
    return {"status": status, "message": message}


def _failure_of(exc: BaseException) -> JsonDict:
    if isinstance(exc, TimeoutError):
        return failure(504, "Timed out waiting for the server")
    if isinstance(exc, NotRetrying):
        return failure(503, "Not ready for retry")
    if isinstance(exc, RemoteRequestFailed):
        return failure(exc.status, exc.message or str(exc))
    return failure(503, str(exc))


async def _per_server(
    by_server: Mapping[str, T],
    ask: Callable[[str, T], Awaitable[JsonDict]],
    timeout_seconds: float,
) -> tuple[dict[str, JsonDict], JsonDict]:
    """`ask` each server at once, each within the timeout: (answers, failures)."""

    async def one(server: str, wanted: T) -> JsonDict:
        return await asyncio.wait_for(ask(server, wanted), timeout_seconds)

    servers = list(by_server)
    results = await asyncio.gather(
        *(one(server, by_server[server]) for server in servers), return_exceptions=True
    )
    answers: dict[str, JsonDict] = {}
    failures: JsonDict = {}
    for server, result in zip(servers, results, strict=True):
        if isinstance(result, (FederationError, TimeoutError, _BadAnswer)):
            logger.info("Asking %s for keys failed: %s", server, result)
            failures[server] = _failure_of(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            answers[server] = result
    return answers, failures


class _BadAnswer(Exception):
    pass


def _section(answer: Any, name: str) -> dict[str, Any]:
    value = answer.get(name) if isinstance(answer, dict) else None
    return value if isinstance(value, dict) else {}


class RemoteE2eKeys:
    def __init__(self, client: FederationRequests, device_lists: RemoteDeviceLists) -> None:
        self._client = client
        self._device_lists = device_lists

    async def query(
        self, user_to_device_ids: Mapping[str, list[str]], timeout_seconds: float
    ) -> JsonDict:
        by_server: dict[str, dict[str, list[str]]] = {}
        for user_id, device_ids in user_to_device_ids.items():
            by_server.setdefault(server_of(user_id), {})[user_id] = device_ids
        answers, failures = await _per_server(by_server, self._query_server, timeout_seconds)
        result: JsonDict = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
        for answer in answers.values():
            for section in result:
                result[section].update(answer[section])
        result["failures"] = failures
        return result

    async def _query_server(self, server: str, wanted: dict[str, list[str]]) -> JsonDict:
        cached = await self._device_lists.cached_lists(list(wanted))
        result: JsonDict = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
        for user_id, device_list in cached.items():
            _add_cached(result, device_list, wanted[user_id])
        uncached = {u: d for u, d in wanted.items() if u not in cached}
        if not uncached:
            return result
        answer = await self._client.post_json(server, USER_KEYS_QUERY, {"device_keys": uncached})
        if not isinstance(answer, dict):
            raise _BadAnswer(f"{server} answered /user/keys/query with no object")
        # only what the server may speak for: its own users, as asked
        for section in result:
            for user_id, value in _section(answer, section).items():
                if user_id in uncached and isinstance(value, dict):
                    result[section][user_id] = value
        return result

    async def claim(
        self, wanted: Mapping[str, Mapping[str, str]], timeout_seconds: float
    ) -> JsonDict:
        by_server: dict[str, dict[str, Mapping[str, str]]] = {}
        for user_id, by_device in wanted.items():
            by_server.setdefault(server_of(user_id), {})[user_id] = by_device
        answers, failures = await _per_server(by_server, self._claim_server, timeout_seconds)
        one_time_keys: JsonDict = {}
        for answer in answers.values():
            one_time_keys.update(answer)
        return {"one_time_keys": one_time_keys, "failures": failures}

    async def _claim_server(self, server: str, wanted: dict[str, Mapping[str, str]]) -> JsonDict:
        answer = await self._client.post_json(server, USER_KEYS_CLAIM, {"one_time_keys": wanted})
        if not isinstance(answer, dict):
            raise _BadAnswer(f"{server} answered /user/keys/claim with no object")
        return {
            user_id: value
            for user_id, value in _section(answer, "one_time_keys").items()
            if user_id in wanted and isinstance(value, dict)
        }


def _add_cached(result: JsonDict, device_list: RemoteDeviceList, device_ids: list[str]) -> None:
    user_id = device_list.user_id
    devices: dict[str, JsonDict] = {}
    for device_id, device in device_list.devices.items():
        if device.keys is None or (device_ids and device_id not in device_ids):
            continue
        keys = dict(device.keys)
        unsigned = keys.get("unsigned")
        keys["unsigned"] = dict(unsigned) if isinstance(unsigned, dict) else {}
        if device.display_name is not None:
            keys["unsigned"]["device_display_name"] = device.display_name
        devices[device_id] = keys
    result["device_keys"][user_id] = devices
    if device_list.master_key is not None:
        result["master_keys"][user_id] = device_list.master_key
    if device_list.self_signing_key is not None:
        result["self_signing_keys"][user_id] = device_list.self_signing_key


def _not_ours(user_id: str) -> MatrixError:
    # as Synapse answers a request about a user it does not host
    return MatrixError(400, "M_UNKNOWN", f"{user_id} is not a user of this server")


class FederationKeyService:
    def __init__(
        self,
        keys: E2eKeyService,
        changes: DeviceChangeLog,
        server_name: str,
        *,
        include_display_names: bool,
    ) -> None:
        self._keys = keys
        self._changes = changes
        self._server_name = server_name
        self._include_display_names = include_display_names

    def _require_local(self, user_ids: list[str]) -> None:
        for user_id in user_ids:
            if server_of(user_id) != self._server_name:
                raise _not_ours(user_id)

    async def user_devices(self, user_id: str) -> JsonDict:
        """GET /_matrix/federation/v1/user/devices/{userId}"""
        self._require_local([user_id])
        found = await self._keys.local_keys(
            "", {user_id: None}, include_display_names=self._include_display_names
        )
        devices = []
        for device_id, keys in sorted(found["device_keys"].get(user_id, {}).items()):
            keys = dict(keys)
            unsigned = dict(keys.pop("unsigned", {}))
            device: JsonDict = {"device_id": device_id, "keys": keys}
            name = unsigned.pop("device_display_name", None)
            if unsigned:
                keys["unsigned"] = unsigned
            if name is not None:
                device["device_display_name"] = name
            devices.append(device)
        answer: JsonDict = {
            "user_id": user_id,
            "stream_id": await self._changes.latest_device_change(user_id) or 0,
            "devices": devices,
        }
        if user_id in found["master_keys"]:
            answer["master_key"] = found["master_keys"][user_id]
        if user_id in found["self_signing_keys"]:
            answer["self_signing_key"] = found["self_signing_keys"][user_id]
        return answer

    async def query(self, user_to_device_ids: Mapping[str, list[str]]) -> JsonDict:
        """POST /_matrix/federation/v1/user/keys/query"""
        self._require_local(list(user_to_device_ids))
        found = await self._keys.local_keys(
            "",
            {user_id: device_ids or None for user_id, device_ids in user_to_device_ids.items()},
            include_display_names=self._include_display_names,
        )
        return {
            "device_keys": found["device_keys"],
            "master_keys": found["master_keys"],
            "self_signing_keys": found["self_signing_keys"],
        }

    async def claim(self, wanted: Mapping[str, Mapping[str, str]]) -> JsonDict:
        """POST /_matrix/federation/v1/user/keys/claim"""
        self._require_local(list(wanted))
        return {"one_time_keys": await self._keys.claim_local(wanted)}
