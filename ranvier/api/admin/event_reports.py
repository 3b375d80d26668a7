"""Event reports admin API (Synapse's paths and shapes, so admin tools work)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import invalid_param, query_choice, query_int, query_string
from ranvier.services.rooms.reports import ReportService

PREFIX = "/_synapse/admin/v1/event_reports"
DEFAULT_LIMIT = 100


def _report_id(request: web.Request) -> int:
    value = request.match_info["report_id"]
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise invalid_param(
            "The report_id parameter must be a string representing a positive integer."
        )
    return int(value)


class EventReportEndpoints:
    def __init__(self, auth: RequestAuthenticator, reports: ReportService) -> None:
        self._auth = auth
        self._reports = reports

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.list_reports),
            web.get(PREFIX + "/{report_id}", self.get_report),
            web.delete(PREFIX + "/{report_id}", self.delete_report),
        ]

    async def list_reports(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/event_reports"""
        await self._auth.require_admin(request)
        direction: Literal["b", "f"] = (
            "f" if query_choice(request, "dir", "b", ("b", "f")) == "f" else "b"
        )
        body = await self._reports.list_reports(
            offset=query_int(request, "from", 0),
            limit=query_int(request, "limit", DEFAULT_LIMIT),
            direction=direction,
            room_id=query_string(request, "room_id"),
            user_id=query_string(request, "user_id"),
            event_sender_user_id=query_string(request, "event_sender_user_id"),
        )
        return json_response(body)

    async def get_report(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/event_reports/{report_id}"""
        requester = await self._auth.require_admin(request)
        return json_response(await self._reports.get_report(requester, _report_id(request)))

    async def delete_report(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/event_reports/{report_id}"""
        await self._auth.require_admin(request)
        await self._reports.delete_report(_report_id(request))
        return json_response({})
