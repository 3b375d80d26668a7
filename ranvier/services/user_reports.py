"""Users reporting other users to the server admins (spec: client-server-api "Reporting
content", POST /users/{userId}/report, v1.14)."""

from __future__ import annotations

from ranvier.clock import now_ms
from ranvier.requester import UserRequester
from ranvier.storage.reports import ReportStore
from ranvier.storage.users import UserStore


class UserReportService:
    def __init__(self, reports: ReportStore, users: UserStore, server_name: str) -> None:
        self._reports = reports
        self._users = users
        self._server_name = server_name

    async def report_user(self, requester: UserRequester, target_user_id: str, reason: str) -> None:
        # spec: a server MAY answer 200 whether or not the user exists, so that reports do
        # not tell who has an account; as Synapse, reports of remote or unknown users are
        # dropped (our admins can act on neither)
        _, _, server = target_user_id.partition(":")
        if server != self._server_name:
            return
        if await self._users.get_user(target_user_id) is None:
            return
        await self._reports.add_user_report(
            target_user_id=target_user_id,
            user_id=requester.user_id,
            reason=reason,
            received_ts=now_ms(),
        )
