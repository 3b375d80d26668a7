"""Users reporting events and rooms to the server admins, and the admins reading those
reports (spec: client-server-api "Reporting content"; Synapse's event reports admin API).
"""

from __future__ import annotations

from typing import Any, Literal

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.requester import UserRequester
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage import rooms as room_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.reports import EventReport, ReportStore

# Synapse's range for the (since removed from the spec) score of an event report
MIN_SCORE, MAX_SCORE = -100, 0


class ReportService:
    def __init__(
        self,
        db: Database,
        store: ReportStore,
        loader: EventLoader,
        serializer: ClientEventSerializer,
    ) -> None:
        self._db = db
        self._store = store
        self._loader = loader
        self._serializer = serializer

    async def report_event(
        self,
        requester: UserRequester,
        room_id: str,
        event_id: str,
        reason: str | None,
        score: int | None,
    ) -> None:
        if score is not None and not MIN_SCORE <= score <= MAX_SCORE:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"score must be an integer in range [{MIN_SCORE}, {MAX_SCORE}]",
            )
        # spec: one answer for "no such event" and "not joined", so reports cannot probe
        not_found = MatrixError(
            404, "M_NOT_FOUND", "The event was not found or you are not joined to the room"
        )
        joined = await state_store.get_rooms_for_user(self._db, requester.user_id)
        if room_id not in joined:
            raise not_found
        event = await self._loader.get_event(event_id)
        if event is None or event.room_id != room_id:
            raise not_found
        content: dict[str, Any] = {}
        if reason is not None:
            content["reason"] = reason
        if score is not None:
            content["score"] = score
        await self._store.add_event_report(
            room_id=room_id,
            event_id=event_id,
            user_id=requester.user_id,
            reason=reason,
            content=content,
            received_ts=now_ms(),
        )

    async def report_room(self, requester: UserRequester, room_id: str, reason: str) -> None:
        if await room_store.get_room(self._db, room_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "The room was not found")
        await self._store.add_room_report(
            room_id=room_id, user_id=requester.user_id, reason=reason, received_ts=now_ms()
        )

    # -- admin -------------------------------------------------------------------------------

    async def list_reports(
        self,
        *,
        offset: int,
        limit: int,
        direction: Literal["b", "f"],
        room_id: str | None,
        user_id: str | None,
        event_sender_user_id: str | None,
    ) -> dict[str, Any]:
        reports, total = await self._store.list_event_reports(
            offset=offset,
            limit=limit,
            direction=direction,
            room_id=room_id,
            user_id=user_id,
            event_sender_user_id=event_sender_user_id,
        )
        body: dict[str, Any] = {
            "event_reports": [await self._summary(report) for report in reports],
            "total": total,
        }
        if offset + len(reports) < total:
            body["next_token"] = offset + len(reports)
        return body

    async def get_report(self, requester: UserRequester, report_id: int) -> dict[str, Any]:
        report = await self._store.get_event_report(report_id)
        if report is None:
            raise MatrixError(404, "M_NOT_FOUND", "Event report not found")
        body = await self._summary(report)
        event = await self._loader.get_event(report.event_id)
        body["event_json"] = (
            None
            if event is None
            else await self._serializer.serialize_event(event, requester_user_id=requester.user_id)
        )
        return body

    async def delete_report(self, report_id: int) -> None:
        if not await self._store.delete_event_report(report_id):
            raise MatrixError(404, "M_NOT_FOUND", "Event report not found")

    async def _summary(self, report: EventReport) -> dict[str, Any]:
        name, alias = await self._room_names(report.room_id)
        return {
            "id": report.id,
            "received_ts": report.received_ts,
            "room_id": report.room_id,
            "name": name,
            "event_id": report.event_id,
            "user_id": report.user_id,
            "reason": report.reason,
            "score": report.content.get("score"),
            "sender": report.sender,
            "canonical_alias": alias,
        }

    async def _room_names(self, room_id: str) -> tuple[str | None, str | None]:
        state = await state_store.get_current_state_ids(self._db, room_id)
        ids = {
            key: state[key]
            for key in (("m.room.name", ""), ("m.room.canonical_alias", ""))
            if key in state
        }
        loaded = await self._loader.get_events(ids.values())
        name_event = loaded.get(ids.get(("m.room.name", ""), ""))
        alias_event = loaded.get(ids.get(("m.room.canonical_alias", ""), ""))
        name = name_event.content.get("name") if name_event else None
        alias = alias_event.content.get("alias") if alias_event else None
        return (
            name if isinstance(name, str) else None,
            alias if isinstance(alias, str) else None,
        )
