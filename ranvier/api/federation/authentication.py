"""Who sent a federation request: the server whose X-Matrix signature verifies.

spec: server-server-api "Request Authentication" - the signature covers the method, the
target as received (path and query), the origin, our server name as destination, and the
JSON body if there is one. Several `Authorization` headers may be sent (one per key); the
request is the origin's if any of them verifies.
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.federation.backoff import Backoff
from ranvier.federation.client import DomainWhitelist
from ranvier.http.json import parse_json
from ranvier.protocol.request_auth import (
    AuthorizationHeaderError,
    parse_authorization_header,
    request_json,
)
from ranvier.protocol.server_names import server_name_problem
from ranvier.protocol.signing import SignatureError
from ranvier.requester import ServerRequester
from ranvier.services.federation.keyring import SignatureVerifier

logger = logging.getLogger(__name__)


def unauthorized(message: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", message)


def malformed(message: str) -> MatrixError:
    # as Synapse: a header that cannot be read (or names no valid server) is a bad request
    return MatrixError(400, "M_UNAUTHORIZED", message)


class FederationAuthenticator:
    def __init__(
        self,
        server_name: str,
        keyring: SignatureVerifier,
        domain_whitelist: DomainWhitelist,
        backoff: Backoff,
    ) -> None:
        self._server_name = server_name
        self._keyring = keyring
        self._whitelist = domain_whitelist
        self._backoff = backoff

    async def authenticate(self, request: web.Request) -> ServerRequester:
        """The server that signed `request`; 401 M_UNAUTHORIZED when no header names our
        server as destination with a signature that verifies (400 when the last header
        tried could not be read or named no valid origin), 403 M_FORBIDDEN when
        federation_domain_whitelist leaves the origin out."""
        values = [
            value
            for value in request.headers.getall(hdrs.AUTHORIZATION, [])
            if value.split(" ", 1)[0].lower() == "x-matrix"
        ]
        if not values:
            raise unauthorized("Missing Authorization headers")
        content = None
        if request.can_read_body:
            raw = await request.read()
            if raw:
                content = parse_json(raw)
        problem = unauthorized("Missing Authorization headers")
        for value in values:
            try:
                header = parse_authorization_header(value)
            except AuthorizationHeaderError as exc:
                problem = malformed(f"Malformed Authorization header: {exc}")
                continue
            if header.destination is not None and header.destination != self._server_name:
                problem = unauthorized("Destination mismatch in auth header")
                continue
            origin_problem = server_name_problem(header.origin)
            if origin_problem is not None:
                problem = malformed(f"Invalid origin {header.origin!r}: {origin_problem}")
                continue
            if not self._whitelist.allows(header.origin):
                raise MatrixError(403, "M_FORBIDDEN", f"Federation denied with {header.origin}.")
            signed = request_json(
                request.method, request.raw_path, header.origin, self._server_name, content
            )
            signed["signatures"] = {header.origin: {header.key: header.sig}}
            try:
                await self._keyring.verify_json_for_server(
                    header.origin, signed, valid_at_ts=now_ms()
                )
            except SignatureError as exc:
                logger.info("Refused a request signed by %s: %s", header.origin, exc)
                problem = unauthorized(f"Invalid signature for server {header.origin}: {exc}")
                continue
            # a server that can sign a request is up: stop backing off from it
            await self._backoff.heard_from(header.origin)
            return ServerRequester(header.origin)
        raise problem
