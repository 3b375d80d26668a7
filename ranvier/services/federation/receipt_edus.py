"""m.receipt between servers (spec: server-server-api "Receipts").

Our users' public read receipts (m.read, threaded ones with their thread_id) go to the
room's other servers in the spec's shape, {room_id: {"m.read": {user_id: {event_ids,
data}}}}, one EDU per user, room and thread, keyed in the outbound queue so a receipt
that moves on before it leaves replaces the one waiting. m.read.private never leaves.
Another server's receipts are taken only for its own users joined to the room, and not
at all for a room whose server ACL denies it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ranvier.clock import now_ms
from ranvier.services.federation.edu_outbox import (
    EduOutbox,
    JoinedServers,
    ServerAllowed,
    both_in_room,
    server_of,
)
from ranvier.services.receipts import READ, ReceiptService
from ranvier.services.typing import JoinedCheck
from ranvier.storage.receipts import Receipt

logger = logging.getLogger(__name__)

RECEIPT_EDU = "m.receipt"


def receipt_edu_content(receipt: Receipt) -> dict[str, Any]:
    data: dict[str, Any] = {"ts": receipt.ts}
    if receipt.thread_id is not None:
        data["thread_id"] = receipt.thread_id
    return {
        receipt.room_id: {
            receipt.receipt_type: {receipt.user_id: {"event_ids": [receipt.event_id], "data": data}}
        }
    }


# spec: appendices "Identifier Grammar", the longest an event ID may be
MAX_ID_LENGTH = 255


def _is_id(value: Any) -> bool:
    """A string that can be an event or thread ID (JSON with a NUL is refused before)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


def _event_ids(value: Any) -> list[str] | None:
    if not isinstance(value, list) or not value:
        return None
    if not all(_is_id(e) and e.startswith("$") for e in value):
        return None
    return value


class ReceiptFederation:
    def __init__(
        self,
        receipts: ReceiptService,
        is_joined: JoinedCheck,
        joined_servers: JoinedServers,
        server_allowed: ServerAllowed,
        server_name: str,
        outbox: EduOutbox | None,
    ) -> None:
        """`outbox` None: nothing is sent (send_federation off), inbound still counts."""
        self._receipts = receipts
        self._server_allowed = server_allowed
        self._is_joined = is_joined
        self._joined_servers = joined_servers
        self._server_name = server_name
        self._outbox = outbox
        if outbox is not None:
            receipts.on_public_receipt.append(self.on_receipt)

    async def on_edu(self, origin: str, content: Mapping[str, Any]) -> None:
        """The m.receipt EDU handler: each receipt in it stands or falls alone."""
        for room_id, by_type in content.items():
            if not isinstance(by_type, Mapping):
                continue
            if not await self._server_allowed(origin, room_id):
                logger.info("Dropping receipts from %s: denied by %s's server ACL", origin, room_id)
                continue
            if not await both_in_room(self._joined_servers, room_id, self._server_name, origin):
                logger.info("Dropping receipts from %s for %s: not both in it", origin, room_id)
                continue
            for receipt_type, by_user in by_type.items():
                if receipt_type != READ or not isinstance(by_user, Mapping):
                    # the spec's EDU carries m.read only; nobody here could see another kind
                    continue
                for user_id, receipt in by_user.items():
                    await self._receive(origin, room_id, user_id, receipt)

    async def _receive(self, origin: str, room_id: str, user_id: str, receipt: Any) -> None:
        if server_of(user_id) != origin:
            logger.info("Dropping a receipt from %s of %s, not its user", origin, user_id)
            return
        event_ids = _event_ids(receipt.get("event_ids")) if isinstance(receipt, Mapping) else None
        if event_ids is None:
            logger.info("Dropping a malformed receipt from %s of %s", origin, user_id)
            return
        if not await self._is_joined(room_id, user_id):
            logger.info("Dropping a receipt from %s: %s not joined to %s", origin, user_id, room_id)
            return
        data = receipt.get("data")
        data = data if isinstance(data, Mapping) else {}
        ts = data.get("ts")
        # as Synapse: a thread ID that is not a string is no thread
        thread_id = data.get("thread_id") if isinstance(data.get("thread_id"), str) else None
        if thread_id is not None and not _is_id(thread_id):
            logger.info("Dropping a receipt from %s of %s: bad thread ID", origin, user_id)
            return
        await self._receipts.receive_remote(
            room_id,
            user_id,
            event_ids,
            thread_id=thread_id,
            ts=ts if type(ts) is int and ts >= 0 else now_ms(),
        )

    def on_receipt(self, receipt: Receipt) -> None:
        """ReceiptService listener: a public receipt of ours was stored."""
        outbox = self._outbox
        assert outbox is not None
        key = (
            RECEIPT_EDU,
            receipt.room_id,
            receipt.receipt_type,
            receipt.user_id,
            receipt.thread_id,
        )
        content = receipt_edu_content(receipt)

        async def send() -> None:
            servers = await outbox.servers_in((receipt.room_id,))
            outbox.send(servers, RECEIPT_EDU, content, key=key)

        outbox.later(send)
