"""Which room is a user's server notices room: one where the system user is joined and the
user is joined or invited. The rooms' memberships say it, so nothing else is stored."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.state import get_rooms_for_user


class ServerNoticeRooms:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(self, system_user_id: str, user_id: str) -> str | None:
        users_rooms = await get_rooms_for_user(self._db, user_id, ("join", "invite"))
        if not users_rooms:
            return None
        system_rooms = await get_rooms_for_user(self._db, system_user_id)
        shared = sorted(set(users_rooms) & set(system_rooms))
        return shared[0] if shared else None
