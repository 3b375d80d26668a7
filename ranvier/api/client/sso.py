"""Single sign-on's browser pages: spec client-server-api "Client login via SSO"
(GET /login/sso/redirect[/{idpId}]), and Synapse's /_synapse/client pages that clients and
admins' reverse proxies already know (the provider picker, the OpenID Connect callback, the
username picker). Also the m.login.sso stage's user-interactive auth fallback page.

What the browser carries between requests is a random session ID in a cookie; what it
stands for is kept server-side (services/sso)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from ranvier.api.client.auth_fallback import html_response
from ranvier.errors import MatrixError
from ranvier.http.json import json_response
from ranvier.http.params import query_string, required_query_string
from ranvier.services.sso.backchannel import BackchannelLogout, LogoutRefused
from ranvier.services.sso.service import (
    CALLBACK_PATH,
    CONSENT_PATH,
    ERROR_TEMPLATE,
    LOGIN_SESSION_LIFETIME_MS,
    PICK_USERNAME_PATH,
    USERNAME_SESSION_LIFETIME_MS,
    AskConsent,
    Page,
    PickUsername,
    Redirect,
    SsoError,
    SsoService,
    add_query_parameter,
)
from ranvier.services.templates import Templates

CLIENT = "/_matrix/client/v3"
REDIRECT = CLIENT + "/login/sso/redirect"
PICK_IDP = "/_synapse/client/pick_idp"
CHECK_USERNAME = "/_synapse/client/pick_username/check"
BACKCHANNEL_LOGOUT = "/_synapse/client/oidc/backchannel_logout"
# Synapse's cookie names. The callback may arrive as a cross-site POST (response_mode
# form_post), which only a SameSite=None cookie survives; browsers that reject SameSite=None
# keep the second one, which says nothing about SameSite.
SESSION_COOKIE = "oidc_session"
SESSION_COOKIE_FALLBACK = "oidc_session_no_samesite"
SESSION_COOKIE_PATH = "/_synapse/client/oidc"
USERNAME_COOKIE = "username_mapping_session"
# the username picker and the new user's consent page both read it
USERNAME_COOKIE_PATH = "/_synapse/client"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SsoEndpoints:
    def __init__(
        self,
        sso: SsoService,
        templates: Templates,
        secure_cookies: bool,
        backchannel: BackchannelLogout | None = None,
    ) -> None:
        self._sso = sso
        self._templates = templates
        # providers with backchannel_logout_enabled: None when there are none
        self._backchannel = backchannel
        # https public_baseurl: cookies marked Secure (a browser drops those on plain http)
        self._secure = secure_cookies

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(REDIRECT, self.redirect),
            web.get(REDIRECT + "/{idpId}", self.redirect_to_provider),
            # r0 had no per-provider path, but Synapse serves it there and clients call it
            web.get("/_matrix/client/r0/login/sso/redirect/{idpId}", self.redirect_to_provider),
            web.get(PICK_IDP, self._pages(self.pick_idp)),
            web.get(CALLBACK_PATH, self._pages(self.callback)),
            web.post(CALLBACK_PATH, self._pages(self.callback)),
            web.get(PICK_USERNAME_PATH, self._pages(self.account_details)),
            web.post(PICK_USERNAME_PATH, self._pages(self.submit_account_details)),
            web.get(CHECK_USERNAME, self.check_username),
            web.get(CONSENT_PATH, self._pages(self.new_user_consent)),
            web.post(CONSENT_PATH, self._pages(self.accept_new_user_consent)),
        ] + (
            [web.post(BACKCHANNEL_LOGOUT, self.backchannel_logout)]
            if self._backchannel is not None
            else []
        )

    def _pages(self, handler: Handler) -> Handler:
        """A browser page: a failure is the error page, not a JSON body."""

        async def page(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except SsoError as exc:
                return self._error_page(exc.error, exc.description, exc.status)
            except MatrixError as exc:
                return self._error_page(exc.errcode, exc.error, exc.status)

        return page

    def _error_page(self, error: str, description: str, status: int) -> web.Response:
        return html_response(
            self._templates.render(ERROR_TEMPLATE, error=error, error_description=description),
            status,
        )

    def render_page(self, page: Page) -> web.Response:
        return html_response(self._templates.render(page.template, **page.context), page.status)

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/client/v3/login/sso/redirect"""
        client_url = required_query_string(request, "redirectUrl")
        provider_id = self._sso.only_provider()
        if provider_id is None:
            # several providers: the user picks one first (as Synapse)
            return _found(add_query_parameter(PICK_IDP, "redirectUrl", client_url))
        return await self.start(provider_id, client_url)

    async def redirect_to_provider(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/client/v3/login/sso/redirect/{idpId}"""
        client_url = required_query_string(request, "redirectUrl")
        return await self.start(request.match_info["idpId"], client_url)

    async def start(
        self, provider_id: str, client_url: str | None, ui_auth_session_id: str | None = None
    ) -> web.StreamResponse:
        try:
            started = await self._sso.start_login(
                provider_id, client_url, ui_auth_session_id=ui_auth_session_id
            )
        except SsoError as exc:
            return self._error_page(exc.error, exc.description, 502)
        response = _found(started.provider_url)
        max_age = LOGIN_SESSION_LIFETIME_MS // 1000
        response.set_cookie(
            SESSION_COOKIE,
            started.session_id,
            path=SESSION_COOKIE_PATH,
            max_age=max_age,
            httponly=True,
            secure=self._secure,
            samesite="None" if self._secure else None,
        )
        response.set_cookie(
            SESSION_COOKIE_FALLBACK,
            started.session_id,
            path=SESSION_COOKIE_PATH,
            max_age=max_age,
            httponly=True,
            secure=self._secure,
        )
        return response

    async def pick_idp(self, request: web.Request) -> web.StreamResponse:
        """GET /_synapse/client/pick_idp"""
        client_url = required_query_string(request, "redirectUrl")
        chosen = query_string(request, "idp")
        if chosen is None:
            return self.render_page(self._sso.picker_page(client_url))
        return _found(add_query_parameter(f"{REDIRECT}/{chosen}", "redirectUrl", client_url))

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """GET, POST /_synapse/client/oidc/callback"""
        params: Mapping[str, str]
        if request.method == "POST":
            form = await request.post()
            params = {key: value for key, value in form.items() if isinstance(value, str)}
        else:
            params = request.query
        session_id = request.cookies.get(SESSION_COOKIE) or request.cookies.get(
            SESSION_COOKIE_FALLBACK
        )
        outcome = await self._sso.callback(session_id, params)
        response = self._outcome(outcome)
        # the session is used up either way
        response.del_cookie(SESSION_COOKIE, path=SESSION_COOKIE_PATH)
        response.del_cookie(SESSION_COOKIE_FALLBACK, path=SESSION_COOKIE_PATH)
        return response

    def _outcome(self, outcome: Redirect | Page | PickUsername | AskConsent) -> web.StreamResponse:
        if isinstance(outcome, Redirect):
            return _found(outcome.url)
        if isinstance(outcome, Page):
            return self.render_page(outcome)
        response = _found(PICK_USERNAME_PATH if isinstance(outcome, PickUsername) else CONSENT_PATH)
        response.set_cookie(
            USERNAME_COOKIE,
            outcome.session_id,
            path=USERNAME_COOKIE_PATH,
            max_age=USERNAME_SESSION_LIFETIME_MS // 1000,
            httponly=True,
            secure=self._secure,
            samesite="Lax",
        )
        return response

    async def account_details(self, request: web.Request) -> web.StreamResponse:
        """GET /_synapse/client/pick_username/account_details"""
        page = await self._sso.account_details_page(request.cookies.get(USERNAME_COOKIE))
        return self.render_page(page)

    async def submit_account_details(self, request: web.Request) -> web.StreamResponse:
        """POST /_synapse/client/pick_username/account_details"""
        form = await request.post()
        username = form.get("username")
        if not isinstance(username, str) or not username.strip():
            page = await self._sso.account_details_page(
                request.cookies.get(USERNAME_COOKIE), "Choose a username", 400
            )
            return self.render_page(page)
        outcome = await self._sso.submit_username(
            request.cookies.get(USERNAME_COOKIE),
            username,
            use_display_name=form.get("use_display_name") in ("true", "on", "1"),
        )
        response = self._outcome(outcome)
        if isinstance(outcome, Redirect) or (isinstance(outcome, Page) and outcome.status < 400):
            response.del_cookie(USERNAME_COOKIE, path=USERNAME_COOKIE_PATH)
        return response

    async def new_user_consent(self, request: web.Request) -> web.StreamResponse:
        """GET /_synapse/client/new_user_consent"""
        return self.render_page(await self._sso.consent_page(request.cookies.get(USERNAME_COOKIE)))

    async def accept_new_user_consent(self, request: web.Request) -> web.StreamResponse:
        """POST /_synapse/client/new_user_consent"""
        form = await request.post()
        accepted = form.get("accepted_version")
        outcome = await self._sso.accept_consent(
            request.cookies.get(USERNAME_COOKIE), accepted if isinstance(accepted, str) else None
        )
        response = self._outcome(outcome)
        if isinstance(outcome, Redirect) or outcome.status < 400:
            response.del_cookie(USERNAME_COOKIE, path=USERNAME_COOKIE_PATH)
        return response

    async def check_username(self, request: web.Request) -> web.Response:
        """GET /_synapse/client/pick_username/check"""
        await self._sso.check_username(required_query_string(request, "username"))
        return json_response({"available": True})

    async def backchannel_logout(self, request: web.Request) -> web.Response:
        """POST /_synapse/client/oidc/backchannel_logout"""
        assert self._backchannel is not None
        form = await request.post()
        token = form.get("logout_token")
        # spec (Back-Channel Logout 1.0, 2.8): 200 when done, 400 with an OAuth error
        # body when not; never cached
        headers = {"Cache-Control": "no-store"}
        if not isinstance(token, str):
            return json_response(
                {"error": "invalid_request", "error_description": "Missing logout_token"},
                status=400,
                headers=headers,
            )
        try:
            await self._backchannel.logout(token)
        except LogoutRefused as exc:
            return json_response(
                {"error": "invalid_request", "error_description": str(exc)},
                status=400,
                headers=headers,
            )
        return web.Response(status=200, headers=headers)


class SsoFallbackPage:
    """The m.login.sso stage's fallback page (sso_auth_confirm.html): a link per provider;
    following one goes through the provider, and the callback records the stage."""

    def __init__(self, endpoints: SsoEndpoints, sso: SsoService) -> None:
        self._endpoints = endpoints
        self._sso = sso

    async def get(self, request: web.Request, session_id: str) -> web.Response:
        provider_id = query_string(request, "idp")
        if provider_id is None:
            page = self._sso.reauth_page(str(request.rel_url), self._sso.provider_ids())
            return self._endpoints.render_page(page)
        response = await self._endpoints.start(provider_id, None, session_id)
        assert isinstance(response, web.Response)
        return response

    async def post(self, request: web.Request, session_id: str) -> web.Response:
        # nothing to submit here: the provider's round trip completes the stage
        return await self.get(request, session_id)


def _found(url: str) -> web.Response:
    return web.Response(status=302, headers={"Location": url})
