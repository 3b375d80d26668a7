"""The fallback pages of user-interactive auth (spec: client-server-api "Fallback"): a web page
per stage that a client which cannot do the stage itself opens in a browser.

Each stage that has a page registers a `FallbackPage` in `FallbackPages` under its stage type
(m.login.recaptcha, m.login.terms, m.login.sso, ...). The endpoint checks the session, then
hands the request to the page; a page that completes its stage records it in the session
(`UserInteractiveAuth.complete_stage`) and answers `auth_done_page`, whose script tells the
client to resubmit its request with just the session.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.http.params import required_query_string
from ranvier.services.templates import Templates
from ranvier.services.uia import UserInteractiveAuth

FALLBACK = "/_matrix/client/v3/auth/{stage_type}/fallback/web"
# Synapse's name; its script is the one the spec prescribes
AUTH_SUCCESS_TEMPLATE = "auth_success.html"


class FallbackPage(Protocol):
    """One stage's page. `session_id` names a live session (the endpoint checked it)."""

    async def get(self, request: web.Request, session_id: str) -> web.Response:
        """The page that lets the user do the stage."""
        ...

    async def post(self, request: web.Request, session_id: str) -> web.Response:
        """What the page's form sent: the stage completed (`auth_done_page`), or the page
        again saying what was wrong."""
        ...


class FallbackPages:
    """Stage type -> its fallback page. Filled while the server is wired (server.py)."""

    def __init__(self) -> None:
        self._pages: dict[str, FallbackPage] = {}

    def register(self, stage_type: str, page: FallbackPage) -> None:
        self._pages[stage_type] = page

    def page(self, stage_type: str) -> FallbackPage | None:
        return self._pages.get(stage_type)


def html_response(body: str, status: int = 200) -> web.Response:
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    # a page that completes auth must not be framed by another site (clickjacking)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none';"
    return response


def auth_done_page(templates: Templates) -> web.Response:
    """The page shown once the stage is done: its script notifies the client."""
    return html_response(templates.render(AUTH_SUCCESS_TEMPLATE))


class AuthFallbackEndpoints:
    def __init__(self, uia: UserInteractiveAuth, pages: FallbackPages) -> None:
        self._uia = uia
        self._pages = pages

    def routes(self) -> list[web.RouteDef]:
        return [web.get(FALLBACK, self.show), web.post(FALLBACK, self.submit)]

    async def show(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/auth/{authType}/fallback/web"""
        page, session_id = await self._page_and_session(request)
        return await page.get(request, session_id)

    async def submit(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/auth/{authType}/fallback/web"""
        page, session_id = await self._page_and_session(request)
        return await page.post(request, session_id)

    async def _page_and_session(self, request: web.Request) -> tuple[FallbackPage, str]:
        stage_type = request.match_info["stage_type"]
        page = self._pages.page(stage_type)
        if page is None:
            raise MatrixError(
                404, "M_UNRECOGNIZED", f"No fallback page for the auth stage {stage_type!r}"
            )
        session_id = required_query_string(request, "session")
        if await self._uia.live_session(session_id) is None:
            raise MatrixError(400, "M_UNKNOWN", "Unknown or expired auth session")
        return page, session_id
