"""The fallback pages of the captcha and policy stages (see auth_fallback.py): a browser
solves Google's captcha, or accepts the policy, for a client that cannot show them."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.client.auth_fallback import auth_done_page, html_response
from ranvier.errors import MatrixError
from ranvier.http.ratelimit import client_address
from ranvier.services.captcha import STAGE_TYPE as RECAPTCHA
from ranvier.services.consent import STAGE_TYPE as TERMS
from ranvier.services.consent import ConsentService
from ranvier.services.templates import Templates
from ranvier.services.uia import StageAuth, UserInteractiveAuth

# the field Google's widget fills in the form it sits in
WIDGET_FIELD = "g-recaptcha-response"


class RecaptchaPage:
    """m.login.recaptcha: Google's widget with the server's public key; the form it fills
    is checked as the API's `response` would be."""

    def __init__(self, uia: UserInteractiveAuth, templates: Templates, public_key: str) -> None:
        self._uia = uia
        self._templates = templates
        self._public_key = public_key

    async def get(self, request: web.Request, session_id: str) -> web.Response:
        return self._page(request, session_id, None)

    async def post(self, request: web.Request, session_id: str) -> web.Response:
        form = await request.post()
        answer = form.get(WIDGET_FIELD)
        session = await self._uia.live_session(session_id)
        if session is None:
            raise MatrixError(400, "M_UNKNOWN", "Unknown or expired auth session")
        auth = StageAuth(
            RECAPTCHA,
            session_id,
            captcha_response=answer if isinstance(answer, str) else None,
            client_ip=client_address(request),
        )
        try:
            await self._uia.complete_stage(session, auth)
        except MatrixError as refusal:
            return self._page(request, session_id, refusal.error)
        return auth_done_page(self._templates)

    def _page(self, request: web.Request, session_id: str, error: str | None) -> web.Response:
        return html_response(
            self._templates.render(
                "recaptcha.html",
                session=session_id,
                myurl=request.path_qs,
                sitekey=self._public_key,
                error=error,
            )
        )


class TermsPage:
    """m.login.terms: a link to the policy and a button to accept it."""

    def __init__(
        self, uia: UserInteractiveAuth, templates: Templates, consent: ConsentService
    ) -> None:
        self._uia = uia
        self._templates = templates
        self._consent = consent

    async def get(self, request: web.Request, session_id: str) -> web.Response:
        return html_response(
            self._templates.render(
                "terms.html",
                session=session_id,
                myurl=request.path_qs,
                terms_url=self._consent.policy_url(),
            )
        )

    async def post(self, request: web.Request, session_id: str) -> web.Response:
        session = await self._uia.live_session(session_id)
        if session is None:
            raise MatrixError(400, "M_UNKNOWN", "Unknown or expired auth session")
        await self._uia.complete_stage(session, StageAuth(TERMS, session_id))
        return auth_done_page(self._templates)
