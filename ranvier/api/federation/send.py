"""Transactions: spec server-server-api "Transactions" (transactions.yaml, PUT /send)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.federation.transactions import MAX_EDUS, MAX_PDUS, TransactionService


class TransactionBody(RequestBody):
    origin: str
    origin_server_ts: int
    pdus: list[dict[str, Any]]
    edus: list[dict[str, Any]] = []


class TransactionEndpoints:
    def __init__(self, auth: FederationAuthenticator, transactions: TransactionService) -> None:
        self._auth = auth
        self._transactions = transactions

    def routes(self) -> list[web.RouteDef]:
        return [web.put("/_matrix/federation/v1/send/{txnId}", self.send)]

    async def send(self, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/send/{txnId}"""
        requester = await self._auth.authenticate(request)
        body = await read_body(request, TransactionBody)
        if len(body.pdus) > MAX_PDUS or len(body.edus) > MAX_EDUS:
            raise MatrixError(
                400,
                "M_BAD_JSON",
                f"A transaction holds at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs",
            )
        if body.origin != requester.server_name:
            raise MatrixError(
                403, "M_FORBIDDEN", "The transaction's origin is not the server that sent it"
            )
        answer = await self._transactions.on_transaction(
            requester.server_name, request.match_info["txnId"], body.pdus, body.edus
        )
        return json_response(answer)
