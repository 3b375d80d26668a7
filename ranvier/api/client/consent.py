"""The consent pages (Synapse's `consent` listener resource, `user_consent`): the policy
rendered from the admin's templates, with a form a user submits to accept it.

The pages are reached through links signed for one user (ConsentService.consent_uri); without
a user they show the policy alone, as the m.login.terms stage links to it.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.api.client.auth_fallback import html_response
from ranvier.config.consent import POLICY_LANGUAGE
from ranvier.errors import MatrixError
from ranvier.services.consent import CONSENT_PATH, ConsentService
from ranvier.services.templates import Templates


class ConsentEndpoints:
    def __init__(self, consent: ConsentService, templates: Templates) -> None:
        # templates over user_consent.template_dir: <language>/<version>.html, success.html
        self._consent = consent
        self._templates = templates

    def routes(self) -> list[web.RouteDef]:
        return [web.get(CONSENT_PATH, self.show), web.post(CONSENT_PATH, self.accept)]

    async def show(self, request: web.Request) -> web.Response:
        """GET /_matrix/consent"""
        version = self._consent.policy_version(request.query.get("v"))
        template = self._policy_template(version)
        user = request.query.get("u")
        if user is None:
            return html_response(
                self._templates.render(
                    template,
                    version=version,
                    public_version=True,
                    has_consented=False,
                    user="",
                    userhmac=None,
                )
            )
        mac = request.query.get("h", "")
        self._consent.check_mac(user, mac)
        user_id = self._consent.qualified_user_id(user)
        await self._consent.require_user(user_id)
        has_consented = await self._consent.has_consented(user_id, version)
        return html_response(
            self._templates.render(
                template,
                version=version,
                public_version=False,
                has_consented=has_consented,
                user=user,
                userhmac=mac,
            )
        )

    async def accept(self, request: web.Request) -> web.Response:
        """POST /_matrix/consent"""
        form = await request.post()
        fields = {name: form.get(name) for name in ("v", "u", "h")}
        values = {name: value for name, value in fields.items() if isinstance(value, str)}
        missing = [name for name in fields if name not in values]
        if missing:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing {', '.join(missing)} in the form")
        version = self._consent.policy_version(values["v"])
        self._policy_template(version)
        self._consent.check_mac(values["u"], values["h"])
        await self._consent.record_consent(self._consent.qualified_user_id(values["u"]), version)
        return html_response(self._templates.render(f"{POLICY_LANGUAGE}/success.html"))

    def _policy_template(self, version: str) -> str:
        template = f"{POLICY_LANGUAGE}/{version}.html"
        if not self._templates.exists(template):
            raise MatrixError(404, "M_NOT_FOUND", f"There is no policy of version {version!r}")
        return template
