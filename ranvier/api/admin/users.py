"""User admin API and shared-secret registration (Synapse's paths, shapes and errors, so
admin tools such as synadm and register_new_matrix_user work)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.body import optional_bool, optional_str, required_str
from ranvier.http.json import json_response, read_json_object
from ranvier.http.params import query_bool, query_choice, query_int
from ranvier.services.admin_users import AdminUserService, UserChanges
from ranvier.storage.user_admin import ORDER_BY_VALUES, UserListQuery

ADMIN = "/_synapse/admin"


def _bad_json(error: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", error)


def _missing(key: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", f"Missing '{key}'")


def _optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise _bad_json(f"'{key}' must be true or false")
    return value


async def _read_optional_json_object(request: web.Request) -> dict[str, Any]:
    # Synapse accepts an empty body where every field is optional
    if not await request.read():
        return {}
    return await read_json_object(request)


def parse_user_changes(body: dict[str, Any]) -> UserChanges:
    user_type = body.get("user_type")
    if user_type is not None and not isinstance(user_type, str):
        raise _bad_json("'user_type' must be a string or null")
    return UserChanges(
        password=optional_str(body, "password"),
        logout_devices=optional_bool(body, "logout_devices", default=True),
        displayname=optional_str(body, "displayname"),
        avatar_url=optional_str(body, "avatar_url"),
        admin=_optional_bool(body, "admin"),
        deactivated=_optional_bool(body, "deactivated"),
        locked=_optional_bool(body, "locked"),
        user_type_given="user_type" in body,
        user_type=user_type,
    )


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
        body = await read_json_object(request)
        if "admin" not in body:
            raise _missing("admin")
        admin = _optional_bool(body, "admin")
        await self._admin_users.set_admin(
            requester.user_id, request.match_info["user_id"], bool(admin)
        )
        return json_response({})

    async def deactivate(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/deactivate/{user_id}"""
        await self._auth.require_admin(request)
        body = await _read_optional_json_object(request)
        erase = optional_bool(body, "erase")
        await self._admin_users.deactivate(request.match_info["user_id"], erase)
        # no identity server bindings exist to undo (3PIDs arrive with email)
        return json_response({"id_server_unbind_result": "success"})

    async def reset_password(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/reset_password/{user_id}"""
        await self._auth.require_admin(request)
        body = await read_json_object(request)
        new_password = required_str(body, "new_password")
        logout_devices = optional_bool(body, "logout_devices", default=True)
        await self._admin_users.reset_password(
            request.match_info["user_id"], new_password, logout_devices
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
        body = await read_json_object(request)
        for key in ("nonce", "username", "password", "mac"):
            if key not in body:
                raise MatrixError(400, "M_BAD_JSON", f"{key} must be specified")
        nonce, username, password, mac = (
            body["nonce"],
            body["username"],
            body["password"],
            body["mac"],
        )
        if not isinstance(nonce, str) or not isinstance(mac, str):
            raise _bad_json("nonce and mac must be strings")
        if not isinstance(username, str):
            raise MatrixError(400, "M_INVALID_USERNAME", "Invalid username")
        if not isinstance(password, str):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid password")
        user_type = optional_str(body, "user_type")
        session = await self._admin_users.register_with_shared_secret(
            nonce=nonce,
            username=username,
            password=password,
            # Synapse's MAC says "admin" for any truthy value; keep that so tools agree
            admin=bool(body.get("admin")),
            user_type=user_type,
            displayname=optional_str(body, "displayname"),
            mac=mac,
            refresh=optional_bool(body, "refresh_token"),
        )
        return json_response(session.response(self._admin_users.server_name))
