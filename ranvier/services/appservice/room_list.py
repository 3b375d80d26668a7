"""The room directories application services keep for their networks (spec:
application-service-api "Published room directories"): a service lists rooms under one
of its networks, and `/publicRooms` shows them to clients that name that network by its
instance ID, `{appservice_id}|{network_id}` as Synapse forms it, or ask for every network.
"""

from __future__ import annotations

from typing import Literal

from ranvier.errors import MatrixError
from ranvier.requester import UserRequester
from ranvier.storage import appservice_room_list as room_list_store
from ranvier.storage import rooms as room_store
from ranvier.storage.database import Database

# appservice_id | network_id
INSTANCE_ID_SEPARATOR = "|"

# (appservice_id, network_id)
Network = tuple[str, str]


def instance_id(appservice_id: str, network_id: str) -> str:
    return f"{appservice_id}{INSTANCE_ID_SEPARATOR}{network_id}"


def parse_instance_id(value: str) -> Network | None:
    """The network a `third_party_instance_id` names; None for one not of our form, which
    can name no network here (the spec's own example, "irc-freenode", is such a one)."""
    appservice_id, separator, network_id = value.partition(INSTANCE_ID_SEPARATOR)
    if not separator or not appservice_id or not network_id:
        return None
    return appservice_id, network_id


class AppServiceRoomList:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def set_visibility(
        self,
        requester: UserRequester,
        network_id: str,
        room_id: str,
        visibility: Literal["public", "private"],
    ) -> None:
        """PUT /directory/list/appservice/{networkId}/{roomId}"""
        service = requester.app_service
        if service is None:
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                "Only application services can edit their networks' published room lists",
            )
        if await room_store.get_room(self._db, room_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Room {room_id} not found")
        await room_list_store.set_listed(
            self._db, service.id, network_id, room_id, visibility == "public"
        )

    async def listed_rooms(self, network: Network | None) -> list[tuple[str, int]]:
        """(room_id, joined members) of the rooms listed in `network`, or in any with None."""
        return await room_list_store.get_listed_rooms(self._db, network)
