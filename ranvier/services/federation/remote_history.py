"""Asking other servers in a room about its history: the client API's timestamp_to_event
falls back to them when this server's closest event is next to a gap (spec: events.yaml
GET /timestamp_to_event, "the heuristics ... based on whether the closest event is a
forward/backward extremity"; and client-server-api room_event_by_timestamp.yaml).

A remote answer is believed only once the event itself is fetched (GET /event), passes the
format, signature and hash checks, and belongs to the room; it is then kept as an outlier
(its state is not known here), so asking again needs no request.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any
from urllib.parse import quote

from ranvier.federation.client import FederationRequests
from ranvier.federation.errors import FederationError
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion
from ranvier.protocol.signing import SignatureError
from ranvier.protocol.validation import PDUValidationError
from ranvier.services.federation.event_checks import EventVerifier
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.sender import FederatedEvent, RoomEventSender, RoomNotFound
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

logger = logging.getLogger(__name__)

FEDERATION_V1 = "/_matrix/federation/v1"


class RemoteHistory:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        client: FederationRequests,
        verifier: EventVerifier,
        sender: RoomEventSender,
        server_name: str,
    ) -> None:
        self._db = db
        self._loader = loader
        self._client = client
        self._verifier = verifier
        self._sender = sender
        self._server_name = server_name

    async def servers_in_room(self, room_id: str) -> list[str]:
        """The other servers with users joined to the room, those with most users first
        (the likeliest to hold its history)."""
        members = await state_store.get_members(self._db, room_id)
        counts = Counter(member.partition(":")[2] for member in members)
        counts.pop(self._server_name, None)
        return sorted(counts, key=lambda server: (-counts[server], server))

    async def closest_event(self, room_id: str, ts: int, forwards: bool) -> tuple[str, int] | None:
        """(event_id, origin_server_ts) of the event another server in the room finds
        closest to `ts` in the direction asked, checked and kept here; None when none
        answers with one."""
        try:
            version = (await self._sender.head(room_id)).room_version
        except RoomNotFound:
            return None
        path = f"{FEDERATION_V1}/timestamp_to_event/{quote(room_id, safe='')}"
        query = {"ts": str(ts), "dir": "f" if forwards else "b"}
        for server in await self.servers_in_room(room_id):
            try:
                answer = await self._client.get_json(server, path, query=query)
            except FederationError as exc:
                logger.info("timestamp_to_event: %s did not answer: %s", server, exc)
                continue
            event_id = answer.get("event_id") if isinstance(answer, dict) else None
            if not isinstance(event_id, str):
                continue
            event = await self._event_from(server, room_id, event_id, version)
            if event is not None:
                return event.event_id, event.origin_server_ts
        return None

    async def _event_from(
        self, server: str, room_id: str, event_id: str, version: RoomVersion
    ) -> Event | None:
        """The event, from here if known, else fetched from `server`, checked and kept."""
        known = await self._loader.get_event(event_id)
        if known is not None:
            return known if known.room_id == room_id else None
        try:
            answer = await self._client.get_json(
                server, f"{FEDERATION_V1}/event/{quote(event_id, safe='')}"
            )
        except FederationError as exc:
            logger.info("timestamp_to_event: %s did not serve %s: %s", server, event_id, exc)
            return None
        pdus: Any = answer.get("pdus") if isinstance(answer, dict) else None
        if not isinstance(pdus, list) or len(pdus) != 1 or not isinstance(pdus[0], dict):
            return None
        try:
            event = await self._verifier.check_pdu(pdus[0], version)
        except (PDUValidationError, SignatureError) as exc:
            logger.info("timestamp_to_event: %s served a bad %s: %s", server, event_id, exc)
            return None
        if event.event_id != event_id or event.room_id != room_id:
            return None
        await self._sender.persist_federated(
            room_id, version, [FederatedEvent(event, None, outlier=True)]
        )
        return event
