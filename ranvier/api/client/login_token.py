"""Signing in another device from this one: spec client-server-api "Login" (login_token.yaml,
POST /login/get_token, v1.7, MSC3882), behind Synapse's `login_via_existing_session`."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.account import require_same_user
from ranvier.api.client.credentials import user_interactive_auth
from ranvier.config.models import LoginViaExistingSession, RatelimitSettings
from ranvier.http.json import json_response, read_json_object
from ranvier.http.ratelimit import Ratelimiter
from ranvier.services.accounts import AccountService
from ranvier.services.login import LoginService
from ranvier.services.uia import UserInteractiveAuth

# As Synapse: one token a minute per user. Each token is a new session, so a stolen access
# token must not become many sessions quickly.
GET_TOKEN_RATE = RatelimitSettings(per_second=1 / 60, burst_count=1)


class LoginTokenEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        login: LoginService,
        accounts: AccountService,
        uia: UserInteractiveAuth,
        settings: LoginViaExistingSession,
    ) -> None:
        self._auth = auth
        self._login = login
        self._accounts = accounts
        self._uia = uia
        self._settings = settings
        self._ratelimiter = Ratelimiter(GET_TOKEN_RATE, name="login/get_token")

    def routes(self) -> list[web.RouteDef]:
        # disabled, the path is not served at all (404 M_UNRECOGNIZED), as in Synapse, and
        # /capabilities says m.get_login_token is off
        if not self._settings.enabled:
            return []
        return [web.post("/_matrix/client/v1/login/get_token", self.get_token)]

    async def get_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v1/login/get_token"""
        requester = await self._auth.require_user(request)
        body = await read_json_object(request) if request.can_read_body else {}
        auth = None
        if self._settings.require_ui_auth:
            auth = await user_interactive_auth(
                self._uia,
                body,
                await self._accounts.reauth_flows_for(requester.user_id),
                operation=f"POST /login/get_token {requester.user_id}",
            )
            require_same_user(auth, requester)
        # counted after user-interactive auth, so the auth dance's own 401s cost nothing
        self._ratelimiter.check(requester.user_id)
        timeout_ms = self._settings.token_timeout
        token = await self._login.create_login_token(requester.user_id, timeout_ms)
        if auth is not None:
            await self._uia.operation_completed(auth)
        return json_response({"login_token": token, "expires_in_ms": timeout_ms})
