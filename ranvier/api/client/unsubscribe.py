"""The unsubscribe link of notification mails (Synapse's `/_synapse/client/unsubscribe`).

GET shows a page asking to confirm, so that a mail scanner following links removes
nothing; POST (the page's button, or a mail client's RFC 8058 one-click request) removes the
email pusher.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.http.params import required_query_string
from ranvier.services.push.email_mail import UNSUBSCRIBE_PATH
from ranvier.services.push.email_unsubscribe import EmailUnsubscribe
from ranvier.services.templates import Templates

TEMPLATE = "unsubscribe.html"


def _html(body: str) -> web.Response:
    response = web.Response(text=body, content_type="text/html", charset="utf-8")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none';"
    return response


class UnsubscribeEndpoints:
    def __init__(self, unsubscribe: EmailUnsubscribe, templates: Templates) -> None:
        self._unsubscribe = unsubscribe
        self._templates = templates

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(UNSUBSCRIBE_PATH, self.confirm),
            web.post(UNSUBSCRIBE_PATH, self.unsubscribe),
        ]

    async def confirm(self, request: web.Request) -> web.Response:
        """GET /_synapse/client/unsubscribe"""
        user_id, pushkey, token = _link(request)
        self._unsubscribe.check(user_id, pushkey, token)
        return _html(
            self._templates.render(
                TEMPLATE, done=False, address=pushkey, action=str(request.rel_url)
            )
        )

    async def unsubscribe(self, request: web.Request) -> web.Response:
        """POST /_synapse/client/unsubscribe"""
        user_id, pushkey, token = _link(request)
        await self._unsubscribe.unsubscribe(user_id, pushkey, token)
        return _html(self._templates.render(TEMPLATE, done=True, address=pushkey, action=""))


def _link(request: web.Request) -> tuple[str, str, str]:
    return (
        required_query_string(request, "u"),
        required_query_string(request, "p"),
        required_query_string(request, "access_token"),
    )
