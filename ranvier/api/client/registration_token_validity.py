"""Whether a registration token may still be used (spec: "Token-authenticated registration")."""

from __future__ import annotations

from aiohttp import web

from ranvier.errors import MatrixError
from ranvier.http.json import json_response
from ranvier.http.params import required_query_string
from ranvier.http.ratelimit import Ratelimiter, client_address
from ranvier.services.registration_tokens import RegistrationTokenService


class RegistrationTokenValidityEndpoints:
    def __init__(
        self,
        tokens: RegistrationTokenService,
        ratelimiter: Ratelimiter,
        enable_registration: bool,
    ) -> None:
        self._tokens = tokens
        self._ratelimiter = ratelimiter
        self._enable_registration = enable_registration

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(
                "/_matrix/client/v1/register/m.login.registration_token/validity", self.validity
            )
        ]

    async def validity(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/register/m.login.registration_token/validity"""
        # spec: rate limited, or tokens could be guessed by brute force
        self._ratelimiter.check(client_address(request))
        if not self._enable_registration:
            raise MatrixError(403, "M_FORBIDDEN", "Registration is not enabled on this homeserver.")
        token = required_query_string(request, "token")
        return json_response({"valid": await self._tokens.is_valid(token)})
