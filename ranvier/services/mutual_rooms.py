"""Rooms two users are both joined to (spec: client-server-api "Mutual Rooms",
GET /v1/mutual_rooms, MSC2666)."""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from dataclasses import dataclass

from ranvier.errors import MatrixError
from ranvier.protocol.power_levels import is_valid_user_id
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

# rooms per page, as Synapse
MUTUAL_ROOMS_PAGE = 100


@dataclass(frozen=True)
class MutualRooms:
    joined: list[str]
    # the `from` of the next page, None on the last one
    next_batch: str | None
    count: int


def _invalid(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def encode_batch(room_id: str) -> str:
    # the last room of a page, in URL-safe base64 so any room ID survives a query string
    return base64.urlsafe_b64encode(room_id.encode()).decode().rstrip("=")


def decode_batch(token: str) -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid("Malformed from token") from None


class MutualRoomsService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def mutual_rooms(
        self, requester_id: str, user_id: str, from_batch: str | None
    ) -> MutualRooms:
        if not is_valid_user_id(user_id):
            raise _invalid("Invalid user_id query parameter")
        if user_id == requester_id:
            raise _invalid("You cannot request a list of shared rooms with yourself")
        mine = await state_store.get_rooms_for_user(self._db, requester_id)
        theirs = await state_store.get_rooms_for_user(self._db, user_id)
        # sorted by room ID, so a page ends at a room ID and the next starts after it,
        # whatever rooms were joined or left in between
        rooms = sorted(mine.keys() & theirs.keys())
        count = len(rooms)
        if from_batch is not None:
            rooms = rooms[bisect_right(rooms, decode_batch(from_batch)) :]
        if len(rooms) <= MUTUAL_ROOMS_PAGE:
            return MutualRooms(rooms, None, count)
        page = rooms[:MUTUAL_ROOMS_PAGE]
        return MutualRooms(page, encode_batch(page[-1]), count)
