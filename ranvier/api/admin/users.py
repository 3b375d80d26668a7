"""User admin API and shared-secret registration (Synapse's paths, shapes and errors, so
admin tools such as synadm and register_new_matrix_user work)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_body, read_json_object, validate_body
from ranvier.http.params import query_bool, query_choice, query_int
from ranvier.services.admin_users import AdminUserService, UserChanges
from ranvier.services.sso.external_ids import ExternalId
from ranvier.storage.user_admin import ORDER_BY_VALUES, UserListQuery

ADMIN = "/_synapse/admin"


class _ThreepidEntry(RequestBody):
    medium: str
    address: str


class _ExternalIdEntry(RequestBody):
    auth_provider: str
    external_id: str


class _UserBody(RequestBody):
    """PUT /_synapse/admin/v2/users/{user_id}; an absent field changes nothing."""

    password: str | None = None
    logout_devices: bool = True
    displayname: str | None = None
    avatar_url: str | None = None
    admin: bool | None = None
    deactivated: bool | None = None
    locked: bool | None = None
    # null is a value here: it makes the user a regular one
    user_type: str | None = None
    # replaces the user's third-party identifiers
    threepids: list[_ThreepidEntry] | None = None
    # replaces the user's single sign-on identities
    external_ids: list[_ExternalIdEntry] | None = None


class _AdminBody(RequestBody):
    admin: bool


class _DeactivateBody(RequestBody):
    erase: bool = False


class _ResetPasswordBody(RequestBody):
    new_password: str
    logout_devices: bool = True


class _SharedSecretBody(RequestBody):
    nonce: str
    username: str
    password: str
    mac: str
    # Synapse's MAC says "admin" for any truthy value; keep that so tools agree
    admin: Any = None
    user_type: str | None = None
    displayname: str | None = None
    refresh_token: bool = False


async def _read_optional_json_object(request: web.Request) -> dict[str, Any]:
    # Synapse accepts an empty body where every field is optional
    if not await request.read():
        return {}
    return await read_json_object(request)


def parse_user_changes(body: dict[str, Any]) -> UserChanges:
    fields = validate_body(body, _UserBody)
    return UserChanges(
        password=fields.password,
        logout_devices=fields.logout_devices,
        displayname=fields.displayname,
        avatar_url=fields.avatar_url,
        admin=fields.admin,
        deactivated=fields.deactivated,
        locked=fields.locked,
        user_type_given="user_type" in fields.model_fields_set,
        user_type=fields.user_type,
        threepids=(
            None
            if fields.threepids is None
            else [(entry.medium, entry.address) for entry in fields.threepids]
        ),
        external_ids=(
            None
            if fields.external_ids is None
            else [ExternalId(e.auth_provider, e.external_id) for e in fields.external_ids]
        ),
    )


def _check_shared_secret_body(body: dict[str, Any]) -> None:
    """Synapse's own refusals for the required fields, which register_new_matrix_user and
    other tools have been written against."""
    for key in ("nonce", "username", "password", "mac"):
        if key not in body:
            raise MatrixError(400, "M_BAD_JSON", f"{key} must be specified")
    if not isinstance(body["username"], str):
        raise MatrixError(400, "M_INVALID_USERNAME", "Invalid username")
    if not isinstance(body["password"], str):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid password")


class AdminUserEndpoints:
    def __init__(self, auth: RequestAuthenticator, admin_users: AdminUserService) -> None:
        self._auth = auth
        self._admin_users = admin_users

    def routes(self) -> list[web.RouteDef]:
        whois = "/admin/whois/{user_id}"
        return [
            web.get(ADMIN + "/v2/users", self.list_users),
            web.get(ADMIN + "/v2/users/{user_id}", self.get_user),
            web.put(ADMIN + "/v2/users/{user_id}", self.put_user),
            web.get(ADMIN + "/v1/users/{user_id}/admin", self.get_admin),
            web.put(ADMIN + "/v1/users/{user_id}/admin", self.put_admin),
            web.post(ADMIN + "/v1/deactivate/{user_id}", self.deactivate),
            web.post(ADMIN + "/v1/reset_password/{user_id}", self.reset_password),
            web.get(ADMIN + "/v1/whois/{user_id}", self.whois),
            web.get(ADMIN + "/v1/threepid/{medium}/users/{address}", self.user_by_threepid),
            # spec: the same lookup in the client-server API
            web.get("/_matrix/client/v3" + whois, self.whois),
            web.get("/_matrix/client/r0" + whois, self.whois),
            web.get(ADMIN + "/v1/register", self.get_nonce),
            web.post(ADMIN + "/v1/register", self.register),
        ]

    async def list_users(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/users"""
        await self._auth.require_admin(request)
        deactivated = query_bool(request, "deactivated")
        query = UserListQuery(
            start=query_int(request, "from", 0),
            limit=query_int(request, "limit", 100),
            user_id=request.query.get("user_id"),
            name=request.query.get("name"),
            guests=query_bool(request, "guests") is not False,
            # v2: deactivated=true includes them; otherwise they are left out
            deactivated=None if deactivated else False,
            admins=query_bool(request, "admins"),
            locked=query_bool(request, "locked") is True,
            order_by=query_choice(request, "order_by", "name", ORDER_BY_VALUES),  # type: ignore[arg-type]
            backwards=query_choice(request, "dir", "f", ("f", "b")) == "b",
        )
        return json_response(await self._admin_users.list_users(query))

    async def get_user(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/users/{user_id}"""
        await self._auth.require_admin(request)
        return json_response(await self._admin_users.get_user(request.match_info["user_id"]))

    async def user_by_threepid(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/threepid/{medium}/users/{address}"""
        await self._auth.require_admin(request)
        return json_response(
            await self._admin_users.user_by_threepid(
                request.match_info["medium"], request.match_info["address"]
            )
        )

    async def put_user(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v2/users/{user_id}"""
        requester = await self._auth.require_admin(request)
        changes = parse_user_changes(await read_json_object(request))
        created, user = await self._admin_users.create_or_modify(
            requester.user_id, request.match_info["user_id"], changes
        )
        return json_response(user, status=201 if created else 200)

    async def get_admin(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{user_id}/admin"""
        await self._auth.require_admin(request)
        is_admin = await self._admin_users.is_admin(request.match_info["user_id"])
        return json_response({"admin": is_admin})

    async def put_admin(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v1/users/{user_id}/admin"""
        requester = await self._auth.require_admin(request)
        body = await read_body(request, _AdminBody)
        await self._admin_users.set_admin(
            requester.user_id, request.match_info["user_id"], body.admin
        )
        return json_response({})

    async def deactivate(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/deactivate/{user_id}"""
        await self._auth.require_admin(request)
        body = validate_body(await _read_optional_json_object(request), _DeactivateBody)
        await self._admin_users.deactivate(request.match_info["user_id"], body.erase)
        # no identity server bindings exist to undo (3PIDs arrive with email)
        return json_response({"id_server_unbind_result": "success"})

    async def reset_password(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/reset_password/{user_id}"""
        await self._auth.require_admin(request)
        body = await read_body(request, _ResetPasswordBody)
        await self._admin_users.reset_password(
            request.match_info["user_id"], body.new_password, body.logout_devices
        )
        return json_response({})

    async def whois(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/whois/{user_id}"""
        requester = await self._auth.require_user(request)
        body = await self._admin_users.whois(
            requester.user_id, requester.is_admin, request.match_info["user_id"]
        )
        return json_response(body)

    async def get_nonce(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/register"""
        return json_response({"nonce": self._admin_users.nonces.new()})

    async def register(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/register"""
        self._admin_users.require_shared_secret()
        raw = await read_json_object(request)
        _check_shared_secret_body(raw)
        body = validate_body(raw, _SharedSecretBody)
        session = await self._admin_users.register_with_shared_secret(
            nonce=body.nonce,
            username=body.username,
            password=body.password,
            admin=bool(body.admin),
            user_type=body.user_type,
            displayname=body.displayname,
            mac=body.mac,
            refresh=body.refresh_token,
        )
        return json_response(session.response(self._admin_users.server_name))
