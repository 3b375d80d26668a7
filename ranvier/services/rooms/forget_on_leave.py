"""`forget_rooms_on_leave`: a local user who leaves a room, or is kicked or banned from it,
forgets it at once, as if their client had called `POST /rooms/{roomId}/forget` (Synapse's
option; MSC4267 describes the behaviour). The room then leaves their /sync (also with
`include_leave`) and its history is closed to them; joining again un-forgets it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ranvier.protocol.events import Event
from ranvier.storage import memberships as membership_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

DEPARTED = frozenset({"leave", "ban"})


class RoomForgetter:
    def __init__(
        self,
        db: Database,
        server_name: str,
        forget_listeners: Sequence[Callable[[str, str], None]],
    ) -> None:
        self._db = db
        self._local_suffix = ":" + server_name
        # the listeners MembershipService tells of a forget, told of these too
        self._forget_listeners = forget_listeners

    async def on_persisted(self, events: Sequence[Event], _position: int) -> None:
        for event in events:
            user_id = event.state_key
            if (
                event.type != "m.room.member"
                or user_id is None
                or not user_id.endswith(self._local_suffix)
                or event.membership not in DEPARTED
            ):
                continue
            # a join that came in since leaves the room remembered
            present = await state_store.get_rooms_for_user(
                self._db, user_id, ("join", "invite", "knock")
            )
            if event.room_id in present:
                continue
            await membership_store.forget_room(self._db, user_id, event.room_id)
            for listener in self._forget_listeners:
                listener(user_id, event.room_id)
