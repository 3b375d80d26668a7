"""Reporting users: spec report_content.yaml, POST /users/{userId}/report (v1.14)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.user_reports import UserReportService

# Synapse's limit; the spec sets none, and admins read these by hand
MAX_REASON_LENGTH = 1000


class _ReportUserBody(RequestBody):
    # spec: required, may be blank
    reason: StrictStr = Field(max_length=MAX_REASON_LENGTH)


class UserReportEndpoints:
    def __init__(self, auth: RequestAuthenticator, reports: UserReportService) -> None:
        self._auth = auth
        self._reports = reports

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/_matrix/client/v3/users/{userId}/report", self.report_user)]

    async def report_user(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/users/{userId}/report"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _ReportUserBody)
        await self._reports.report_user(requester, request.match_info["userId"], body.reason)
        return json_response({})
