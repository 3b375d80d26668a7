"""History visibility: which events of a room a user may see, and who may read a room at all.

spec: client-server-api "Room History Visibility", server behaviour. Visibility is decided
by the state *at each event* (the history_visibility in force and the user's membership
then), not by the room's current state, so changing the setting never reveals or hides
history retroactively.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.services.account_data import GlobalAccountDataReader, ignored_users
from ranvier.services.retention import RoomRetention
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.account_data import AccountDataStore
from ranvier.storage.database import Database
from ranvier.storage.memberships import MembershipHistory, get_membership_history

HISTORY_VISIBILITY = ("m.room.history_visibility", "")
KNOWN_VISIBILITIES = frozenset({"world_readable", "shared", "invited", "joined"})
DEPARTED = frozenset({"leave", "ban"})


def visibility_of(content: object) -> str:
    """spec: an absent or unknown history_visibility counts as `shared`."""
    value = content.get("history_visibility") if isinstance(content, dict) else None
    return value if isinstance(value, str) and value in KNOWN_VISIBILITIES else "shared"


def may_see(visibility: str, membership: str | None, joined_after_event: bool) -> bool:
    """spec: history visibility server behaviour, rules 1-5, for one (visibility, membership)."""
    if visibility == "world_readable":
        return True
    if membership == "join":
        return True
    if visibility == "shared" and joined_after_event:
        return True
    return visibility == "invited" and membership == "invite"


@dataclass(frozen=True)
class RoomAccess:
    """How a user may read a room: as a member, as a former member (up to the event that
    ended their membership), or as anyone (world_readable)."""

    room_id: str
    membership: str | None
    # the membership event that ended a departed user's view of the room
    membership_event_id: str | None = None
    # that event's stream position: a former member reads nothing after it
    membership_position: int | None = None

    @property
    def departed(self) -> bool:
        return self.membership in DEPARTED


def not_in_room() -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", "You are not allowed to view this room")


class HistoryVisibility:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        account_data: GlobalAccountDataReader | None = None,
        retention: RoomRetention | None = None,
    ) -> None:
        self._db = db
        self._loader = loader
        # read only, for the user's ignore list
        self._account_data = account_data or AccountDataStore(db)
        # hides messages older than their room's retention policy allows
        self._retention = retention

    async def check_user_can_see_room(
        self, user_id: str, room_id: str, *, allow_departed_users: bool = True
    ) -> RoomAccess:
        """Members, former members (unless they forgot the room) and, in world_readable
        rooms, anyone may read; everyone else gets 403 M_FORBIDDEN, also for rooms that do
        not exist, so room IDs cannot be probed."""
        history = await get_membership_history(self._db, room_id, user_id)
        if history.latest_membership == "join":
            return RoomAccess(room_id, "join", history.latest_event_id, history.latest_position)
        if (
            allow_departed_users
            and history.latest_membership in DEPARTED
            and not history.forgotten
            # a former member is someone who was once in the room
            and history.join_positions
        ):
            return RoomAccess(
                room_id,
                history.latest_membership,
                history.latest_event_id,
                history.latest_position,
            )
        current = await state_store.get_current_state_ids(self._db, room_id)
        visibility_id = current.get(HISTORY_VISIBILITY)
        if visibility_id is not None:
            event = await self._loader.get_event(visibility_id)
            if event is not None and visibility_of(event.content) == "world_readable":
                return RoomAccess(room_id, history.latest_membership)
        raise not_in_room()

    async def filter_events_for_client(self, user_id: str, events: Sequence[Event]) -> list[Event]:
        """The events the user may see, in the order given: also (spec: "Ignoring
        Users", and as Synapse) without the non-state events of users they ignore. State
        events stay: the room's state is what it is, whoever set it."""
        if self._retention is not None:
            events = await self._retention.drop_expired(events)
        if not events:
            return []
        ignored = await ignored_users(self._account_data, user_id)
        if ignored:
            events = [e for e in events if e.state_key is not None or e.sender not in ignored]
            if not events:
                return []
        groups = await self._loader.state_groups_of(e.event_id for e in events)
        # the state before a user's own membership change or a visibility change: spec says
        # either side of such an event may allow seeing it
        special = [e for e in events if self._is_special(e, user_id) and e.prev_event_ids]
        before_groups = await self._loader.state_groups_of(e.prev_event_ids[0] for e in special)
        views = await self._views({*groups.values(), *before_groups.values()}, user_id)

        histories: dict[str, MembershipHistory] = {}
        positions: dict[str, int] | None = None
        visible: list[Event] = []
        for event in events:
            sides: list[tuple[str, str | None]] = []
            after = groups.get(event.event_id)
            if after is not None:
                sides.append(views[after])
            if self._is_special(event, user_id) and event.prev_event_ids:
                before = before_groups.get(event.prev_event_ids[0])
                if before is not None:
                    sides.append(views[before])
            allowed = False
            for visibility, membership in sides:
                joined_after = False
                if visibility == "shared" and membership != "join":
                    if event.room_id not in histories:
                        histories[event.room_id] = await get_membership_history(
                            self._db, event.room_id, user_id
                        )
                    if positions is None:
                        positions = await event_store.get_stream_orderings(
                            self._db, [e.event_id for e in events]
                        )
                    stream = positions.get(event.event_id)
                    joined_after = stream is not None and histories[event.room_id].joined_after(
                        stream
                    )
                if may_see(visibility, membership, joined_after):
                    allowed = True
                    break
            if allowed:
                visible.append(event)
        return visible

    @staticmethod
    def _is_special(event: Event, user_id: str) -> bool:
        return (event.type, event.state_key) == HISTORY_VISIBILITY or (
            event.type == "m.room.member" and event.state_key == user_id
        )

    async def _views(self, group_ids: set[int], user_id: str) -> dict[int, tuple[str, str | None]]:
        """State group -> (history visibility, the user's membership) in it; the events of
        every group are loaded together."""
        member = ("m.room.member", user_id)
        group_to_ids: dict[int, tuple[str | None, str | None]] = {}
        for group_id in group_ids:
            state = await self._loader.get_state_group(group_id)
            group_to_ids[group_id] = (state.get(HISTORY_VISIBILITY), state.get(member))
        loaded = await self._loader.get_events(
            event_id for ids in group_to_ids.values() for event_id in ids if event_id is not None
        )
        views: dict[int, tuple[str, str | None]] = {}
        for group_id, (visibility_id, member_id) in group_to_ids.items():
            visibility_event = loaded.get(visibility_id or "")
            member_event = loaded.get(member_id or "")
            visibility = visibility_of(visibility_event.content if visibility_event else None)
            views[group_id] = (visibility, member_event.membership if member_event else None)
        return views
