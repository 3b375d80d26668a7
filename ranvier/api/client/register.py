"""Registration: spec client-server-api "Account registration" (registration.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.credentials import stage_auth, user_interactive_auth
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_json_object, validate_body
from ranvier.http.params import query_choice, required_query_string
from ranvier.http.ratelimit import Ratelimiter, client_address
from ranvier.services.accounts import AccountService, Registered
from ranvier.services.appservice.users import AppServiceUsers
from ranvier.services.uia import UserInteractiveAuth

REGISTER = "/_matrix/client/v3/register"
# where a registration session keeps the hash of the password its first request chose
PASSWORD_HASH = "password_hash"
# where a completed registration session keeps the user it registered, for retries
REGISTERED_USER_ID = "registered_user_id"
# spec: application-service-api "Server admin style permissions"
APPSERVICE_REGISTRATION = "m.login.application_service"


class _RegisterBody(RequestBody):
    username: str | None = None
    password: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    inhibit_login: bool = False
    refresh_token: bool = False
    # spec "Guest access": upgrading a guest account
    guest_access_token: str | None = None


class _AppServiceRegisterBody(RequestBody):
    type: str
    username: str | None = None
    # the name older services send, as Synapse still reads it
    user: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    inhibit_login: bool = False
    refresh_token: bool = False


class RegisterEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        accounts: AccountService,
        uia: UserInteractiveAuth,
        server_name: str,
        ratelimiter: Ratelimiter,
        appservice_users: AppServiceUsers,
    ) -> None:
        self._auth = auth
        self._accounts = accounts
        self._appservice_users = appservice_users
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
        raw = await read_json_object(request)
        if raw.get("type") == APPSERVICE_REGISTRATION:
            return await self._register_for_appservice(request, raw)
        if self._auth.appservice_or_none(request) is not None:
            # as Synapse: a service registers its users with its own type only
            raise MatrixError(
                400,
                "M_UNKNOWN",
                "An access token should not be provided on requests to /register "
                f"(except if type is {APPSERVICE_REGISTRATION})",
            )
        address = client_address(request)
        self._ratelimiter.check(address, update=False)
        kind = query_choice(request, "kind", "user", ("user", "guest"))
        body = validate_body(raw, _RegisterBody)
        if kind == "guest":
            registered = await self._accounts.register_guest(
                device_id=body.device_id,
                display_name=body.initial_device_display_name,
                refresh=body.refresh_token,
            )
            self._ratelimiter.record(address)
            self._record_seen(request, registered)
            return json_response(registered.response(self._server_name))
        self._accounts.require_registration_enabled()
        operation = f"POST {REGISTER}"
        # As Synapse: a request repeating a session that already registered an account
        # (its answer lost on the way) logs in to that account rather than failing
        stage = stage_auth(raw.get("auth"))
        registered_user_id = None
        if stage is not None and stage.session is not None:
            registered_user_id = await self._uia.completed_value(
                stage.session, operation, REGISTERED_USER_ID
            )
        # the password never enters the auth session: its hash does
        params = {key: value for key, value in raw.items() if key not in ("auth", "password")}
        server_values = {}
        if registered_user_id is None:
            if params or body.password is not None:
                # check the choices before asking for auth, so a bad one is known at once
                upgrade = await self._accounts.guest_to_upgrade(
                    body.guest_access_token, body.username
                )
                localpart = upgrade or self._accounts.check_username(body.username)
                self._accounts.check_new_password(body.password)
                if upgrade is None:
                    await self._accounts.precheck_username(localpart)
            if body.password is not None:
                server_values[PASSWORD_HASH] = await self._accounts.hash_password(body.password)
        auth = await user_interactive_auth(
            self._uia,
            {**params, "auth": raw.get("auth")},
            self._accounts.registration_flows(),
            operation=operation,
            server_values=server_values,
            client_ip=address,
        )
        # a request carrying only `auth` registers what the session's first request asked
        chosen = validate_body(auth.clientdict, _RegisterBody)
        if registered_user_id is not None:
            registered = await self._accounts.log_in_registered(
                registered_user_id,
                device_id=chosen.device_id,
                display_name=chosen.initial_device_display_name,
                inhibit_login=chosen.inhibit_login,
                refresh=chosen.refresh_token,
            )
            self._record_seen(request, registered)
            return json_response(registered.response(self._server_name))
        password_hash = auth.session.serverdict.get(PASSWORD_HASH)
        if password_hash is None:
            self._accounts.check_new_password(None)
        upgrade = await self._accounts.guest_to_upgrade(chosen.guest_access_token, chosen.username)
        registered = await self._accounts.register(
            localpart=upgrade or self._accounts.check_username(chosen.username),
            upgrade_guest=upgrade is not None,
            password_hash=password_hash,
            device_id=chosen.device_id,
            display_name=chosen.initial_device_display_name,
            inhibit_login=chosen.inhibit_login,
            refresh=chosen.refresh_token,
        )
        self._ratelimiter.record(address)
        await self._accounts.registered_through(registered.user_id, auth.completed)
        await self._uia.operation_completed(auth, remember={REGISTERED_USER_ID: registered.user_id})
        self._record_seen(request, registered)
        return json_response(registered.response(self._server_name))

    async def _register_for_appservice(
        self, request: web.Request, raw: dict[str, object]
    ) -> web.Response:
        """A service registering a user of its namespace: no flows, no password, and open
        even with `enable_registration: false`."""
        service = self._auth.appservice(request)
        body = validate_body(raw, _AppServiceRegisterBody)
        localpart = body.username if body.username is not None else body.user
        if localpart is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing 'username'")
        user_id = await self._appservice_users.register(service, localpart)
        registered = await self._accounts.log_in_registered(
            user_id,
            device_id=body.device_id,
            display_name=body.initial_device_display_name,
            inhibit_login=body.inhibit_login,
            refresh=body.refresh_token,
        )
        return json_response(registered.response(self._server_name))

    def _record_seen(self, request: web.Request, registered: Registered) -> None:
        if registered.session is not None:
            self._auth.record_seen(request, registered.user_id, registered.session.device_id)

    async def available(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/register/available"""
        self._accounts.require_registration_enabled()
        username = required_query_string(request, "username")
        await self._accounts.check_available(username)
        return json_response({"available": True})
