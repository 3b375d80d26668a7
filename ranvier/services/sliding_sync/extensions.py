"""Sliding sync's extensions (MSC4186; MSC3884 e2ee, MSC3885 to_device, MSC3959
account_data, MSC3960 receipts, MSC3961 typing): the streams other than the rooms' events,
read from the same sources as /sync (services/sync/sources.py) and put in their own shape.

The endpoint decides the rooms in the response and the token positions; `build` answers
the request's `extensions` object for them. An extension absent or not enabled adds
nothing to the answer; an enabled one always answers (to_device always carries the
`next_batch` the client sends back as `since`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.errors import bad_json
from ranvier.protocol.filters import Filter
from ranvier.services.sliding_sync import extension_requests as requests
from ranvier.services.sync.account_data import AccountDataReader
from ranvier.services.sync.sources import (
    DeviceListsSource,
    ReceiptsSource,
    ToDeviceSource,
    TypingSource,
)
from ranvier.storage import sync as sync_store
from ranvier.storage.database import Database
from ranvier.streams.sync_token import SyncToken

JsonDict = dict[str, Any]
# account data with no filter: sliding sync has none for it
_NO_FILTER = Filter()


@dataclass(frozen=True)
class ExtensionContext:
    user_id: str
    device_id: str | None
    # stream positions of the request's `pos`; None on an initial request
    from_token: SyncToken | None
    # the positions this response reads up to
    to_token: SyncToken
    # list name -> the room IDs in its ranges
    list_rooms: Mapping[str, Sequence[str]]
    subscribed_rooms: Sequence[str]
    joined_rooms: Collection[str]
    # rooms this response sends from scratch (new to the connection, or resent in full):
    # their receipts and account data are sent whole, not only what changed since `pos`
    initial_rooms: Collection[str] = ()


class SlidingSyncExtensions:
    def __init__(
        self,
        db: Database,
        to_device: ToDeviceSource | None,
        device_lists: DeviceListsSource | None,
        account_data: AccountDataReader | None,
        receipts: ReceiptsSource | None,
        typing: TypingSource | None,
    ) -> None:
        # a source left out (None): its extension answers as if nothing ever happened
        self._db = db
        self._to_device = to_device
        self._device_lists = device_lists
        self._account_data = account_data
        self._receipts = receipts
        self._typing = typing

    async def build(self, ctx: ExtensionContext, requested: object) -> JsonDict:
        """The response's `extensions` object for the request's `extensions`; M_BAD_JSON
        (400) for malformed options."""
        if requested is None:
            return {}
        if not isinstance(requested, dict):
            raise bad_json("extensions must be an object")
        body: JsonDict = {}
        options = requests.enabled(requested, "to_device")
        if options is not None:
            body["to_device"] = await self._to_device_extension(ctx, options)
        options = requests.enabled(requested, "e2ee")
        if options is not None:
            body["e2ee"] = await self._e2ee_extension(ctx)
        options = requests.enabled(requested, "account_data")
        if options is not None:
            body["account_data"] = await self._account_data_extension(ctx, options)
        options = requests.enabled(requested, "receipts")
        if options is not None:
            rooms = self._scope(ctx, options, "receipts")
            body["receipts"] = {"rooms": await self._ephemeral(ctx, self._receipts, rooms)}
        options = requests.enabled(requested, "typing")
        if options is not None:
            rooms = self._scope(ctx, options, "typing")
            body["typing"] = {"rooms": await self._ephemeral(ctx, self._typing, rooms)}
        return body

    @staticmethod
    def _scope(ctx: ExtensionContext, options: JsonDict, name: str) -> set[str]:
        rooms = requests.rooms_in_scope(options, name, ctx.list_rooms, ctx.subscribed_rooms)
        # only rooms the user is in: a list may show rooms it was invited to or left, and
        # their receipts and typing are not the user's to see
        return rooms & set(ctx.joined_rooms) if name != "account_data" else rooms

    # -- to_device (MSC3885) ------------------------------------------------------------

    async def _to_device_extension(self, ctx: ExtensionContext, options: JsonDict) -> JsonDict:
        since = requests.to_device_since(options)
        limit = requests.to_device_limit(options)
        upto = ctx.to_token.to_device
        if self._to_device is None or ctx.device_id is None:
            return {"next_batch": str(upto), "events": []}
        if since is not None and since > upto:
            # not a position this server handed out: nothing is deleted on its word
            return {"next_batch": str(since), "events": []}
        if since is not None:
            # the client sends back a next_batch once it holds what came with it: those
            # messages are acknowledged and deleted; a retry with the same `since` is
            # answered again from there, so nothing is lost
            await self._to_device.ack(ctx.user_id, ctx.device_id, since)
        events = await self._to_device.get_updates(
            ctx.user_id, ctx.device_id, (), since or 0, upto, limit=limit
        )
        return {"next_batch": str(events.position), "events": list(events)}

    # -- e2ee (MSC3884) -----------------------------------------------------------------

    async def _e2ee_extension(self, ctx: ExtensionContext) -> JsonDict:
        body: JsonDict = {
            "device_one_time_keys_count": {},
            "device_unused_fallback_key_types": [],
        }
        if self._device_lists is None:
            return body
        if ctx.device_id is not None:
            counts = await self._device_lists.key_counts(ctx.user_id, ctx.device_id)
            # the stable names only: sliding sync came after fallback keys were specified,
            # and an unknown key would read as news to a long-poll on every pass
            for name in body:
                body[name] = counts[name]
        if ctx.from_token is not None:
            # as /sync: device list changes only since a position, never on an initial
            # request (the client then asks /keys/query for everyone)
            memberships = await sync_store.get_memberships(
                self._db, ctx.user_id, ctx.from_token.events, ctx.to_token.events
            )
            changes = await self._device_lists.get_updates(
                ctx.user_id,
                memberships,
                ctx.from_token,
                ctx.to_token.events,
                ctx.to_token.device_lists,
            )
            if changes:
                body["device_lists"] = changes
        return body

    # -- account_data (MSC3959) ---------------------------------------------------------

    async def _account_data_extension(self, ctx: ExtensionContext, options: JsonDict) -> JsonDict:
        rooms = self._scope(ctx, options, "account_data")
        if self._account_data is None:
            return {"global": [], "rooms": {}}
        start = ctx.from_token
        updates = await self._account_data.updates(
            ctx.user_id,
            ctx.device_id,
            None if start is None else start.account_data,
            0 if start is None else start.push_rules,
            _NO_FILTER,
        )
        room_events = {r: e for r, e in updates.room_events.items() if r in rooms}
        fresh = rooms.intersection(ctx.initial_rooms) if start is not None else set()
        if fresh:
            # rooms new to the connection: all their account data, changed or not
            everything = await self._account_data.updates(
                ctx.user_id, ctx.device_id, None, 0, _NO_FILTER
            )
            for room_id in fresh:
                if room_id in everything.room_events:
                    room_events[room_id] = everything.room_events[room_id]
        return {"global": updates.global_events, "rooms": room_events}

    # -- receipts (MSC3960) and typing (MSC3961) ------------------------------------------

    async def _ephemeral(
        self,
        ctx: ExtensionContext,
        source: ReceiptsSource | TypingSource | None,
        rooms: set[str],
    ) -> dict[str, JsonDict]:
        """{room_id: the m.receipt or m.typing event} for the rooms in scope: what changed
        since the request's position, and all of it for rooms sent from scratch."""
        if source is None or not rooms:
            return {}
        upto = ctx.to_token.get(source.stream_name)
        start = ctx.from_token
        fresh = rooms if start is None else rooms.intersection(ctx.initial_rooms)
        found: dict[str, JsonDict] = {}
        if fresh:
            found.update(await source.get_updates(ctx.user_id, ctx.device_id, fresh, 0, upto))
        if start is not None and rooms - fresh:
            found.update(
                await source.get_updates(
                    ctx.user_id,
                    ctx.device_id,
                    rooms - fresh,
                    start.get(source.stream_name),
                    upto,
                )
            )
        return found


def has_news(extensions: JsonDict) -> bool:
    """Whether an `extensions` answer carries anything for the client, so a long-poll
    may answer with it (key counts and a to_device `next_batch` alone are no news)."""
    if extensions.get("to_device", {}).get("events"):
        return True
    device_lists = extensions.get("e2ee", {}).get("device_lists", {})
    if device_lists.get("changed") or device_lists.get("left"):
        return True
    account_data = extensions.get("account_data", {})
    if account_data.get("global") or account_data.get("rooms"):
        return True
    return any(extensions.get(name, {}).get("rooms") for name in ("receipts", "typing"))
