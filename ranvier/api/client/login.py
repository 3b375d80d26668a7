"""Login, refresh and logout: spec client-server-api "Login" (login.yaml, refresh.yaml,
logout.yaml) and whoami.yaml."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.credentials import (
    appservice_login_user,
    login_token,
    password_credentials,
)
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_body, read_json_object, validate_body
from ranvier.http.ratelimit import Ratelimiters, client_address
from ranvier.services.appservice.users import AppServiceUsers
from ranvier.services.jwt_login import LOGIN_TYPE as JWT_LOGIN
from ranvier.services.jwt_login import JwtLogin
from ranvier.services.login import (
    APPSERVICE_LOGIN,
    PASSWORD_LOGIN,
    SSO_LOGIN,
    TOKEN_LOGIN,
    LoginService,
    LoginToken,
)
from ranvier.services.uia import PasswordCredentials

CLIENT = "/_matrix/client/v3"


class _LoginBody(RequestBody):
    type: str
    device_id: str | None = None
    initial_device_display_name: str | None = None
    refresh_token: bool = False


class _RefreshBody(RequestBody):
    refresh_token: str


class LoginEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        login: LoginService,
        server_name: str,
        ratelimiters: Ratelimiters,
        appservice_users: AppServiceUsers,
        jwt: JwtLogin | None = None,
    ) -> None:
        self._auth = auth
        self._login = login
        # org.matrix.login.jwt, when jwt_config is enabled
        self._jwt = jwt
        self._appservice_users = appservice_users
        self._server_name = server_name
        self._limits = ratelimiters

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CLIENT + "/login", self.get_login_flows),
            web.post(CLIENT + "/login", self.login),
            web.post(CLIENT + "/refresh", self.refresh),
            web.post(CLIENT + "/logout", self.logout),
            web.post(CLIENT + "/logout/all", self.logout_all),
            web.get(CLIENT + "/account/whoami", self.whoami),
        ]

    async def get_login_flows(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/login"""
        flows: list[dict[str, object]] = [
            {"type": login_type} for login_type in self._login.login_types()
        ]
        identity_providers = self._login.identity_providers()
        if identity_providers:
            # spec: client-server-api "Client login via SSO"
            flows.append({"type": SSO_LOGIN, "identity_providers": identity_providers})
        if self._jwt is not None:
            flows.append({"type": JWT_LOGIN})
        return json_response({"flows": flows})

    async def login(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/login"""
        raw = await read_json_object(request)
        body = validate_body(raw, _LoginBody)
        if body.type == APPSERVICE_LOGIN:
            return await self._login_for_appservice(request, raw, body)
        # rc_login.address: every attempt from one IP
        self._limits.login_address.check(client_address(request))
        if body.type == JWT_LOGIN and self._jwt is not None:
            return await self._login_with_jwt(request, raw, body)
        credentials: PasswordCredentials | LoginToken
        if body.type == PASSWORD_LOGIN:
            credentials = password_credentials(raw)
        elif body.type == TOKEN_LOGIN:
            credentials = LoginToken(login_token(raw))
        else:
            raise MatrixError(400, "M_UNKNOWN", f"Unknown login type {body.type!r}")
        # the account a password login names, lower case as user IDs are registered
        account = None
        if isinstance(credentials, PasswordCredentials):
            # (an email address stands for the account it names, as Synapse counts it)
            account = (
                self._login.qualified_user_id(credentials.user).lower()
                if credentials.user
                else f"{credentials.medium}:{credentials.address}".lower()
            )
        if account is not None:
            # rc_login.failed_attempts counts wrong passwords; rc_login.account successful
            # logins. Both are only asked here, so a refused request costs nothing.
            self._limits.login_failed_attempts.check(account, update=False)
            self._limits.login_account.check(account, update=False)
        try:
            session = await self._login.login(
                credentials,
                device_id=body.device_id,
                display_name=body.initial_device_display_name,
                refresh=body.refresh_token,
            )
        except MatrixError as error:
            if account is not None and error.errcode == "M_FORBIDDEN":
                self._limits.login_failed_attempts.record(account)
            raise
        self._limits.login_account.record(session.user_id.lower())
        self._auth.record_seen(request, session.user_id, session.device_id)
        return json_response(session.response(self._server_name))

    async def _login_for_appservice(
        self, request: web.Request, raw: dict[str, object], body: _LoginBody
    ) -> web.Response:
        """A service logging in as a user of its namespace: its as_token is the credential
        (spec: application-service-api "Server admin style permissions")."""
        service = self._auth.appservice(request)
        user_id = await self._appservice_users.check_login(service, appservice_login_user(raw))
        session = await self._login.start_session(
            user_id,
            body.device_id,
            body.initial_device_display_name,
            refresh=body.refresh_token,
        )
        self._auth.record_seen(request, session.user_id, session.device_id)
        return json_response(session.response(self._server_name))

    async def _login_with_jwt(
        self, request: web.Request, raw: dict[str, object], body: _LoginBody
    ) -> web.Response:
        """org.matrix.login.jwt: the token names the user (Synapse's jwt_config)."""
        assert self._jwt is not None
        user_id = await self._jwt.user_for_token(login_token(raw))
        session = await self._login.start_session(
            user_id,
            body.device_id,
            body.initial_device_display_name,
            refresh=body.refresh_token,
        )
        self._auth.record_seen(request, session.user_id, session.device_id)
        return json_response(session.response(self._server_name))

    async def refresh(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/refresh"""
        body = await read_body(request, _RefreshBody)
        session = await self._login.refresh(body.refresh_token)
        self._auth.record_seen(request, session.user_id, session.device_id)
        response: dict[str, object] = {
            "access_token": session.access_token,
            "refresh_token": session.refresh_token,
        }
        if session.expires_in_ms is not None:
            response["expires_in_ms"] = session.expires_in_ms
        return json_response(response)

    async def logout(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/logout"""
        requester = await self._auth.require_user(request, allow_guest=True, allow_locked=True)
        await self._login.logout(requester.user_id, requester.device_id, requester.access_token_id)
        return json_response({})

    async def logout_all(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/logout/all"""
        requester = await self._auth.require_user(request, allow_guest=True, allow_locked=True)
        await self._login.logout_all(requester.user_id)
        return json_response({})

    async def whoami(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/account/whoami"""
        requester = await self._auth.require_user(request, allow_guest=True)
        body: dict[str, object] = {"user_id": requester.user_id, "is_guest": requester.is_guest}
        if requester.device_id is not None:
            body["device_id"] = requester.device_id
        return json_response(body)
