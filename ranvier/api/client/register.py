"""Registration: spec client-server-api "Account registration" (registration.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.body import optional_bool, optional_str
from ranvier.http.json import json_response, read_json_object
from ranvier.http.ratelimit import Ratelimiter, client_address
from ranvier.services.accounts import AccountService, Registered
from ranvier.services.uia import UserInteractiveAuth

REGISTER = "/_matrix/client/v3/register"
# where a registration session keeps the hash of the password its first request chose
PASSWORD_HASH = "password_hash"


class RegisterEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        accounts: AccountService,
        uia: UserInteractiveAuth,
        server_name: str,
        ratelimiter: Ratelimiter,
    ) -> None:
        self._auth = auth
        self._accounts = accounts
        self._uia = uia
        self._server_name = server_name
        # rc_registration, per client IP; only accounts actually created count, so the
        # round trips of user-interactive auth cost nothing
        self._ratelimiter = ratelimiter

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(REGISTER, self.register),
            web.get(REGISTER + "/available", self.available),
        ]

    async def register(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/register"""
        body = await read_json_object(request)
        address = client_address(request)
        self._ratelimiter.check(address, update=False)
        kind = request.query.get("kind", "user")
        device_id = optional_str(body, "device_id")
        display_name = optional_str(body, "initial_device_display_name")
        refresh = optional_bool(body, "refresh_token")
        if kind == "guest":
            registered = await self._accounts.register_guest(
                device_id=device_id, display_name=display_name, refresh=refresh
            )
            self._ratelimiter.record(address)
            self._record_seen(request, registered)
            return json_response(registered.response(self._server_name))
        if kind != "user":
            raise MatrixError(400, "M_INVALID_PARAM", "'kind' must be 'user' or 'guest'")
        self._accounts.require_registration_enabled()
        password = optional_str(body, "password")
        # the password never enters the auth session: its hash does
        params = {key: value for key, value in body.items() if key not in ("auth", "password")}
        if params or password is not None:
            # check the choices before asking for auth, so a bad one is known at once
            localpart = self._accounts.check_username(body)
            self._accounts.check_new_password(password)
            await self._accounts.precheck_username(localpart)
            optional_bool(body, "inhibit_login")
        server_values = {}
        if password is not None:
            server_values[PASSWORD_HASH] = await self._accounts.hash_password(password)
        auth = await self._uia.authenticate(
            {**params, "auth": body.get("auth")},
            self._accounts.registration_flows(),
            operation=f"POST {REGISTER}",
            server_values=server_values,
        )
        # a request carrying only `auth` registers what the session's first request asked
        chosen = auth.clientdict
        password_hash = auth.session.serverdict.get(PASSWORD_HASH)
        if password_hash is None:
            self._accounts.check_new_password(None)
        registered = await self._accounts.register(
            localpart=self._accounts.check_username(chosen),
            password_hash=password_hash,
            device_id=optional_str(chosen, "device_id"),
            display_name=optional_str(chosen, "initial_device_display_name"),
            inhibit_login=optional_bool(chosen, "inhibit_login"),
            refresh=optional_bool(chosen, "refresh_token"),
        )
        self._ratelimiter.record(address)
        await self._uia.operation_completed(auth)
        self._record_seen(request, registered)
        return json_response(registered.response(self._server_name))

    def _record_seen(self, request: web.Request, registered: Registered) -> None:
        if registered.session is not None:
            self._auth.record_seen(request, registered.user_id, registered.session.device_id)

    async def available(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/register/available"""
        self._accounts.require_registration_enabled()
        username = request.query.get("username")
        if username is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing 'username'")
        await self._accounts.check_available(username)
        return json_response({"available": True})
