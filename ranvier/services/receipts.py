"""Read receipts and read markers (spec: client-server-api "Receipts", "Fully read markers").

m.read and m.read.private are receipts, stored with a position in the receipts stream and
delivered by /sync as m.receipt ephemeral events; a private receipt only ever reaches its
owner. m.fully_read is not a receipt: it is the room account data the read marker lives in.
Public receipts of our users go to the room's other servers, and theirs are stored beside
ours (services/federation/receipt_edus.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.services.account_data import AccountDataService
from ranvier.services.stream_notify import Notify
from ranvier.services.typing import ActivityCallback, JoinedCheck, ignore_activity
from ranvier.storage.receipts import RECEIPTS_STREAM, Receipt, ReceiptStore

logger = logging.getLogger(__name__)

READ = "m.read"
READ_PRIVATE = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = (READ, READ_PRIVATE)
# spec: "main" names the main timeline of a room for threaded receipts
MAIN_THREAD = "main"
ACCOUNT_DATA_STREAM = "account_data"

# (user_id, room_id, event_id, thread_id): push clears notification counts on these
ReceiptListener = Callable[[str, str, str, str | None], Awaitable[None]]
# a public receipt of ours was stored (other servers are told)
PublicReceiptListener = Callable[[Receipt], None]


def invalid(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def check_event_id(event_id: str) -> None:
    if not event_id.startswith("$") or len(event_id) < 2:
        raise invalid(f"{event_id!r} is not a valid event ID")


class ReceiptService:
    stream_name = RECEIPTS_STREAM

    def __init__(
        self,
        store: ReceiptStore,
        account_data: AccountDataService,
        is_joined: JoinedCheck,
        notify: Notify,
        position: int,
        on_activity: ActivityCallback = ignore_activity,
    ) -> None:
        self._on_activity = on_activity
        self._store = store
        self._account_data = account_data
        self._is_joined = is_joined
        self._notify = notify
        # the last committed position; kept here so current_position needs no query
        self._position = position
        self.on_receipt: list[ReceiptListener] = []
        self.on_public_receipt: list[PublicReceiptListener] = []

    @classmethod
    async def create(
        cls,
        store: ReceiptStore,
        account_data: AccountDataService,
        is_joined: JoinedCheck,
        notify: Notify,
        on_activity: ActivityCallback = ignore_activity,
    ) -> ReceiptService:
        position = await store.current_stream_position()
        return cls(store, account_data, is_joined, notify, position, on_activity)

    def current_position(self) -> int:
        return self._position

    async def _check_joined(self, user_id: str, room_id: str) -> None:
        if not await self._is_joined(room_id, user_id):
            raise MatrixError(403, "M_FORBIDDEN", "You are not joined to this room")
        # reading is activity, as in Synapse
        await self._on_activity(user_id)

    async def send_receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None = None,
    ) -> None:
        """POST /rooms/{roomId}/receipt/{receiptType}/{eventId}; `thread_id` None when
        the body had none (an unthreaded receipt)."""
        if receipt_type not in (*RECEIPT_TYPES, FULLY_READ):
            raise invalid(f"Receipt type must be one of {', '.join((*RECEIPT_TYPES, FULLY_READ))}")
        check_event_id(event_id)
        if thread_id is not None and receipt_type == FULLY_READ:
            raise invalid(f"thread_id is not allowed for {FULLY_READ}")
        await self._check_joined(user_id, room_id)
        if receipt_type == FULLY_READ:
            await self._set_fully_read(user_id, room_id, event_id)
        else:
            await self._put(user_id, room_id, receipt_type, event_id, thread_id)

    async def set_read_markers(
        self,
        user_id: str,
        room_id: str,
        fully_read: str | None,
        read: str | None,
        read_private: str | None,
    ) -> None:
        """POST /rooms/{roomId}/read_markers"""
        for event_id in (fully_read, read, read_private):
            if event_id is not None:
                check_event_id(event_id)
        await self._check_joined(user_id, room_id)
        if fully_read is not None:
            await self._set_fully_read(user_id, room_id, fully_read)
        if read is not None:
            await self._put(user_id, room_id, READ, read, None)
        if read_private is not None:
            await self._put(user_id, room_id, READ_PRIVATE, read_private, None)

    async def _set_fully_read(self, user_id: str, room_id: str, event_id: str) -> None:
        position = await self._account_data.set_fully_read(user_id, room_id, event_id)
        self._notify(ACCOUNT_DATA_STREAM, position, users=(user_id,))

    async def _put(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None,
    ) -> None:
        receipt = Receipt(
            room_id=room_id,
            receipt_type=receipt_type,
            user_id=user_id,
            thread_id=thread_id,
            event_id=event_id,
            ts=now_ms(),
        )
        position = await self._store.put_receipt(receipt)
        if position is None:
            # behind the receipt the user already has: nothing moved
            return
        self._position = max(self._position, position)
        # listeners first: a sync woken by the receipt must already see what they change
        # (push clears the reader's unread counts)
        for listener in self.on_receipt:
            try:
                await listener(user_id, room_id, event_id, thread_id)
            except Exception:
                # the receipt is stored; a listener's failure must not fail the request
                logger.exception("Receipt listener failed for %s in %s", user_id, room_id)
        if receipt_type == READ_PRIVATE:
            # nobody else ever sees it: wake only its owner
            self._notify(RECEIPTS_STREAM, position, users=(user_id,))
            return
        self._notify(RECEIPTS_STREAM, position, rooms=(room_id,))
        for public_listener in self.on_public_receipt:
            try:
                public_listener(receipt)
            except Exception:
                logger.exception("Receipt listener failed for %s in %s", user_id, room_id)

    async def receive_remote(
        self,
        room_id: str,
        user_id: str,
        event_ids: Sequence[str],
        *,
        thread_id: str | None,
        ts: int,
    ) -> None:
        """An m.read receipt of another server's user (checked by the caller: theirs,
        joined), stored and shown like ours; of several events, the newest we have. Their
        unread counts are not kept here, so the listeners are not told."""
        event_id = await self._store.newest_known(room_id, event_ids) or event_ids[-1]
        receipt = Receipt(
            room_id=room_id,
            receipt_type=READ,
            user_id=user_id,
            thread_id=thread_id,
            event_id=event_id,
            ts=ts,
        )
        position = await self._store.put_receipt(receipt)
        if position is None:
            return
        self._position = max(self._position, position)
        self._notify(RECEIPTS_STREAM, position, rooms=(room_id,))

    async def get_updates(
        self,
        user_id: str,
        device_id: str | None,
        room_ids: Collection[str],
        from_pos: int,
        to_pos: int,
    ) -> dict[str, dict[str, Any]]:
        """{room_id: m.receipt event} of the receipts that moved in (from_pos, to_pos]."""
        receipts = await self._store.get_receipts(room_ids, from_pos, to_pos)
        return build_receipt_events(receipts, user_id)


def build_receipt_events(receipts: Collection[Receipt], viewer: str) -> dict[str, dict[str, Any]]:
    """m.receipt events per room for `viewer`: others' private receipts left out."""
    room_id_to_content: dict[str, dict[str, Any]] = {}
    for receipt in receipts:
        if receipt.receipt_type == READ_PRIVATE and receipt.user_id != viewer:
            continue
        data: dict[str, Any] = {"ts": receipt.ts}
        if receipt.thread_id is not None:
            data["thread_id"] = receipt.thread_id
        content = room_id_to_content.setdefault(receipt.room_id, {})
        by_type = content.setdefault(receipt.event_id, {}).setdefault(receipt.receipt_type, {})
        by_type[receipt.user_id] = data
    return {
        room_id: {"type": "m.receipt", "content": content}
        for room_id, content in room_id_to_content.items()
    }
