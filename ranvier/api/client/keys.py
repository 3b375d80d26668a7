"""End-to-end encryption keys: spec client-server-api "End-to-End Encryption" (keys.yaml,
cross_signing.yaml)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    RootModel,
    StrictInt,
    StrictStr,
    field_validator,
)

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.account import require_same_user
from ranvier.api.client.credentials import user_interactive_auth
from ranvier.http.json import (
    RequestBody,
    invalid_param_error,
    json_response,
    read_body,
    read_json_object,
    validate_body,
)
from ranvier.http.params import required_query_string
from ranvier.protocol.e2e_keys import (
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    check_device_keys,
    parse_fallback_keys,
    parse_one_time_keys,
)
from ranvier.services.accounts import AccountService
from ranvier.services.device_lists import DeviceListService
from ranvier.services.e2e_keys import E2eKeyService, KeyUpload
from ranvier.services.uia import UserInteractiveAuth

KEYS = "/_matrix/client/v3/keys"

JsonObject = dict[str, Any]


class KeysUploadBody(RequestBody):
    """POST /keys/upload; the dehydrated device's PUT carries the same fields. The key
    objects are kept whole (they are signed), their shapes checked by protocol/e2e_keys."""

    device_keys: JsonObject | None = None
    one_time_keys: JsonObject | None = None
    fallback_keys: JsonObject | None = None
    # the name clients used before fallback keys were in the spec (MSC2732)
    unstable_fallback_keys: JsonObject | None = Field(
        default=None, alias="org.matrix.msc2732.fallback_keys"
    )

    @field_validator("device_keys")
    @classmethod
    def _device_keys(cls, value: JsonObject | None) -> JsonObject | None:
        return None if value is None else check_device_keys(value)

    @field_validator("one_time_keys")
    @classmethod
    def _one_time_keys(cls, value: JsonObject | None) -> JsonObject | None:
        if value is not None:
            parse_one_time_keys(value)
        return value

    @field_validator("fallback_keys", "unstable_fallback_keys")
    @classmethod
    def _fallback_keys(cls, value: JsonObject | None) -> JsonObject | None:
        if value is not None:
            parse_fallback_keys(value)
        return value

    def key_upload(self) -> KeyUpload:
        fallback_keys = self.fallback_keys
        if fallback_keys is None:
            fallback_keys = self.unstable_fallback_keys
        return KeyUpload(
            self.device_keys,
            parse_one_time_keys(self.one_time_keys or {}),
            parse_fallback_keys(fallback_keys or {}),
        )


def _user_id(value: str) -> str:
    if not value.startswith("@") or ":" not in value:
        raise invalid_param_error(f"{value!r} is not a user ID")
    return value


_UserId = Annotated[str, AfterValidator(_user_id)]


class _KeysQueryBody(RequestBody):
    # user ID -> device IDs (empty: all of them)
    device_keys: dict[_UserId, list[StrictStr]]
    # how long to wait for other servers, in milliseconds
    timeout: StrictInt = Field(default=10_000, ge=0)


class _KeysClaimBody(RequestBody):
    # user ID -> device ID -> algorithm
    one_time_keys: dict[_UserId, dict[str, StrictStr]]
    # how long to wait for other servers, in milliseconds
    timeout: StrictInt = Field(default=10_000, ge=0)


class _CrossSigningUploadBody(RequestBody):
    # the keys are kept as signed; whose they are and their shape is checked by the
    # service, which knows the requester (protocol/e2e_keys.check_cross_signing_key)
    master_key: JsonObject | None = None
    self_signing_key: JsonObject | None = None
    user_signing_key: JsonObject | None = None

    def by_usage(self) -> dict[str, JsonObject]:
        keys = {
            MASTER: self.master_key,
            SELF_SIGNING: self.self_signing_key,
            USER_SIGNING: self.user_signing_key,
        }
        return {usage: key for usage, key in keys.items() if key is not None}


class _SignaturesUploadBody(RootModel[dict[str, dict[str, Any]]]):
    """user ID -> key ID -> signed key. A signed key that is no object is that key's
    failure (the service's answer), not the whole request's."""

    model_config = ConfigDict(strict=True)


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
        body = await read_body(request, KeysUploadBody)
        return json_response(
            await self._keys.upload(requester.user_id, requester.device_id, body.key_upload())
        )

    async def query(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/query"""
        requester = await self._auth.require_user(request, allow_guest=True)
        body = await read_body(request, _KeysQueryBody)
        return json_response(
            await self._keys.query(requester.user_id, body.device_keys, body.timeout / 1000)
        )

    async def claim(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/claim"""
        await self._auth.require_user(request, allow_guest=True)
        body = await read_body(request, _KeysClaimBody)
        return json_response(await self._keys.claim(body.one_time_keys, body.timeout / 1000))

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
        # the whole body goes on to user-interactive auth, which keeps it in the session
        body = await read_json_object(request)
        uploaded = validate_body(body, _CrossSigningUploadBody).by_usage()
        keys, needs_auth = await self._keys.check_cross_signing_upload(requester.user_id, uploaded)
        # spec v1.17: an application service replaces its users' keys without UIA
        if not needs_auth or requester.app_service is not None:
            await self._keys.upload_cross_signing_keys(requester.user_id, keys)
            return json_response({})
        auth = await user_interactive_auth(
            self._uia,
            body,
            await self._accounts.reauth_flows_for(requester.user_id),
            operation=f"POST {KEYS}/device_signing/upload {requester.user_id}",
        )
        require_same_user(auth, requester)
        await self._keys.upload_cross_signing_keys(requester.user_id, keys)
        await self._uia.operation_completed(auth)
        return json_response({})

    async def upload_signatures(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/signatures/upload"""
        requester = await self._auth.require_user(request)
        signed_keys = (await read_body(request, _SignaturesUploadBody)).root
        return json_response(await self._keys.upload_signatures(requester.user_id, signed_keys))
