"""Device lists across servers (spec: server-server-api "Device Management").

Inbound: other servers' users' device lists are cached while a local user shares a room
with them (storage/remote_devices.py). An `m.device_list_update` that follows on from the
cached list (its prev_id is the stream_id we hold) is applied; one that does not (a gap:
an update we missed) makes us fetch the whole list again with GET /user/devices/{userId}.
An update for a user whose list is not cached yet is fetched the same way (in the
background, as any resync: the transaction is answered first). `m.signing_key_update` replaces
their cross-signing keys. Every change takes a position in our device_lists stream, so it
reaches /sync `device_lists.changed` and /keys/changes.

Outbound: each change to a local user's device list (new, renamed or deleted device, new
device keys, cross-signing upload) goes to every server sharing a room with them, as
`m.device_list_update` per device, or `m.signing_key_update`. The stream_id is the
change's position in our device_lists stream and prev_id the user's previous device
change, so the receiver can tell whether it missed one.
They wait in the federation outbox until acknowledged, so a server that was down or we
restarted meanwhile still hears of them; for it, a user's newer change replaces the one
still pending, and the gap in prev_ids makes it fetch the user's whole list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ranvier.federation.client import FederationRequests
from ranvier.federation.errors import FederationError
from ranvier.federation.queue import FederationSender
from ranvier.protocol.e2e_keys import (
    MASTER,
    SELF_SIGNING,
    KeyFormatError,
    check_cross_signing_key,
    cross_signing_public_key,
)
from ranvier.protocol.events import Event
from ranvier.services.device_lists import DeviceListService
from ranvier.storage.database import Database
from ranvier.storage.device_lists import USER_KEYS, DeviceChangeLog
from ranvier.storage.devices import DeviceStore
from ranvier.storage.e2e_keys import E2eKeyStore, Signature
from ranvier.storage.memberships import get_joined_servers
from ranvier.storage.remote_devices import (
    DeviceUpdate,
    RemoteDevice,
    RemoteDeviceList,
    RemoteDeviceStore,
    UpdateOutcome,
)
from ranvier.storage.state import get_members

logger = logging.getLogger(__name__)

DEVICE_LIST_UPDATE = "m.device_list_update"
SIGNING_KEY_UPDATE = "m.signing_key_update"
USER_DEVICES = "/_matrix/federation/v1/user/devices/"
# how long fetching a user's list may take before a waiting /keys/query gives up on it
RESYNC_TIMEOUT_SECONDS = 30.0

JsonDict = dict[str, Any]
JoinedRooms = Callable[[str], Awaitable[list[str]]]


def server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


class MalformedDeviceList(ValueError):
    pass


def parse_user_devices(user_id: str, answer: Any) -> RemoteDeviceList:
    """The answer of GET /user/devices/{userId}, checked: devices whose keys are not the
    user's own are left out; a malformed answer raises MalformedDeviceList."""
    if not isinstance(answer, dict) or answer.get("user_id") != user_id:
        raise MalformedDeviceList(f"the answer is not {user_id}'s device list")
    stream_id = answer.get("stream_id")
    devices = answer.get("devices")
    if not isinstance(stream_id, int) or isinstance(stream_id, bool):
        raise MalformedDeviceList("stream_id must be an integer")
    if not isinstance(devices, list):
        raise MalformedDeviceList("devices must be a list")
    found: dict[str, RemoteDevice] = {}
    for device in devices:
        if not isinstance(device, dict) or not isinstance(device.get("device_id"), str):
            continue
        device_id = device["device_id"]
        keys = _device_keys(device.get("keys"), user_id, device_id)
        name = device.get("device_display_name")
        found[device_id] = RemoteDevice(device_id, keys, name if isinstance(name, str) else None)
    return RemoteDeviceList(
        user_id,
        stream_id,
        found,
        _cross_signing_key(answer.get("master_key"), user_id, MASTER),
        _cross_signing_key(answer.get("self_signing_key"), user_id, SELF_SIGNING),
    )


def _device_keys(keys: Any, user_id: str, device_id: str) -> JsonDict | None:
    """The keys as the user's server gave them (clients check the device's signature,
    as Synapse passes them on unchecked), unless they name another user or device."""
    if not isinstance(keys, dict):
        return None
    if keys.get("user_id", user_id) != user_id or keys.get("device_id", device_id) != device_id:
        return None
    return keys


def _cross_signing_key(key: Any, user_id: str, usage: str) -> JsonDict | None:
    if key is None:
        return None
    try:
        return check_cross_signing_key(key, user_id, usage).json
    except KeyFormatError:
        return None


class RemoteDeviceLists:
    def __init__(
        self,
        db: Database,
        store: RemoteDeviceStore,
        client: FederationRequests,
        device_lists: DeviceListService,
        joined_rooms: JoinedRooms,
        server_name: str,
    ) -> None:
        self._db = db
        self._store = store
        self._client = client
        self._device_lists = device_lists
        self._joined_rooms = joined_rooms
        self._server_name = server_name
        # one fetch of a user's list at a time; a second asker waits for the first
        self._user_to_resync: dict[str, asyncio.Task[RemoteDeviceList | None]] = {}

    async def shares_room(self, user_id: str) -> bool:
        """Whether a local user is joined to a room the user is joined to."""
        return bool(await self._store.sharing_a_room([user_id], self._server_name))

    async def cached_lists(self, user_ids: list[str]) -> dict[str, RemoteDeviceList]:
        """The users' lists, from the cache or fetched now, for those we share a room with
        (only they are kept up to date by their servers)."""
        sharing = await self._store.sharing_a_room(user_ids, self._server_name)
        shared = [user_id for user_id in user_ids if user_id in sharing]
        unshared = [user_id for user_id in user_ids if user_id not in sharing]
        if unshared:
            # their servers stopped telling us of changes: what we hold may be stale
            await self._store.forget(unshared)
        found = await self._store.get_lists(shared)
        # a list being fetched again is waited for rather than served as it was
        missing = [u for u in shared if u not in found or u in self._user_to_resync]
        if missing:
            fetched = await asyncio.gather(*(self.resync(user_id) for user_id in missing))
            found.update({fl.user_id: fl for fl in fetched if fl is not None})
        return found

    def resync(self, user_id: str) -> Awaitable[RemoteDeviceList | None]:
        """Fetch the user's whole list from their server and cache it; None if it could
        not be had (the cache then holds nothing for them). A caller that gives up does
        not stop the fetch."""
        return asyncio.shield(self._start_resync(user_id))

    def _start_resync(self, user_id: str) -> asyncio.Task[RemoteDeviceList | None]:
        task = self._user_to_resync.get(user_id)
        if task is None:
            task = asyncio.create_task(self._resync(user_id), name=f"device list {user_id}")
            self._user_to_resync[user_id] = task
            task.add_done_callback(lambda done: self._resync_done(user_id, done))
        return task

    def _resync_done(self, user_id: str, task: asyncio.Task[RemoteDeviceList | None]) -> None:
        self._user_to_resync.pop(user_id, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "Fetching the device list of %s failed", user_id, exc_info=task.exception()
            )

    async def _resync(self, user_id: str) -> RemoteDeviceList | None:
        try:
            answer = await self._client.get_json(
                server_of(user_id),
                USER_DEVICES + quote(user_id, safe=""),
                timeout=RESYNC_TIMEOUT_SECONDS,
            )
            fetched = parse_user_devices(user_id, answer)
        except (FederationError, MalformedDeviceList) as exc:
            logger.info("Could not fetch the device list of %s: %s", user_id, exc)
            # the next query asks again
            await self._store.forget([user_id])
            return None
        position = await self._store.replace_list(fetched)
        await self._device_lists.changed(user_id, position)
        return fetched

    async def on_persisted(self, events: Sequence[Event], _position: int) -> None:
        """Forget the lists of other servers' users we stopped sharing a room with (a leave
        of theirs or of one of our users): their servers stop telling us of changes, so
        what we hold would go stale before we next share a room."""
        candidates: set[str] = set()
        for event in events:
            if event.type != "m.room.member" or event.state_key is None:
                continue
            if event.content.get("membership") == "join":
                continue
            if server_of(event.state_key) != self._server_name:
                candidates.add(event.state_key)
            else:
                members = await get_members(self._db, event.room_id)
                candidates.update(m for m in members if server_of(m) != self._server_name)
        if not candidates:
            return
        cached = await self._store.cached_users(candidates)
        gone = cached - await self._store.sharing_a_room(cached, self._server_name)
        if gone:
            await self._store.forget(gone)

    # -- EDUs --------------------------------------------------------------------------------

    async def on_device_list_update(self, origin: str, content: Mapping[str, Any]) -> None:
        """An m.device_list_update EDU from `origin`."""
        update = _parse_update(content)
        if update is None or server_of(update.user_id) != origin:
            logger.info("Dropping a malformed or misattributed device list update from %s", origin)
            return
        if not await self.shares_room(update.user_id):
            await self._store.forget([update.user_id])
            return
        outcome, position = await self._store.apply_update(update)
        if outcome == UpdateOutcome.APPLIED and position is not None:
            await self._device_lists.changed(update.user_id, position)
        elif outcome in (UpdateOutcome.NOT_CACHED, UpdateOutcome.GAP):
            logger.info(
                "Device list update %s of %s follows %s, which we do not have: fetching it",
                update.stream_id,
                update.user_id,
                list(update.prev_ids),
            )
            # the fetch runs in the background (the transaction is answered now); started
            # first, so the queries of room-mates' clients, told at once, wait for it
            position = await self._store.record_change(update.user_id, [update.device_id])
            self._start_resync(update.user_id)
            await self._device_lists.changed(update.user_id, position)

    async def on_signing_key_update(self, origin: str, content: Mapping[str, Any]) -> None:
        """An m.signing_key_update EDU from `origin`."""
        user_id = content.get("user_id")
        if not isinstance(user_id, str) or server_of(user_id) != origin:
            logger.info("Dropping a malformed or misattributed signing key update from %s", origin)
            return
        master = _cross_signing_key(content.get("master_key"), user_id, MASTER)
        self_signing = _cross_signing_key(content.get("self_signing_key"), user_id, SELF_SIGNING)
        if master is None and self_signing is None:
            return
        if not await self.shares_room(user_id):
            await self._store.forget([user_id])
            return
        position = await self._store.set_cross_signing_keys(user_id, master, self_signing)
        await self._device_lists.changed(user_id, position)


def _parse_update(content: Mapping[str, Any]) -> DeviceUpdate | None:
    user_id = content.get("user_id")
    device_id = content.get("device_id")
    stream_id = content.get("stream_id")
    prev_ids = content.get("prev_id", [])
    deleted = content.get("deleted", False)
    name = content.get("device_display_name")
    if (
        not isinstance(user_id, str)
        or not isinstance(device_id, str)
        or not isinstance(stream_id, int)
        or isinstance(stream_id, bool)
        or not isinstance(prev_ids, list)
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in prev_ids)
        or not isinstance(deleted, bool)
    ):
        return None
    keys = None if deleted else _device_keys(content.get("keys"), user_id, device_id)
    return DeviceUpdate(
        user_id,
        device_id,
        stream_id,
        prev_ids,
        deleted,
        keys,
        name if isinstance(name, str) else None,
    )


class DeviceListPublisher:
    """Tells the servers sharing a room with a local user of each change to their device
    list (DeviceListService calls `publish` with every local change's position)."""

    def __init__(
        self,
        db: Database,
        sender: FederationSender,
        changes: DeviceChangeLog,
        devices: DeviceStore,
        keys: E2eKeyStore,
        joined_rooms: JoinedRooms,
        server_name: str,
        *,
        include_display_names: bool,
    ) -> None:
        self._db = db
        self._sender = sender
        self._changes = changes
        self._devices = devices
        self._keys = keys
        self._joined_rooms = joined_rooms
        self._server_name = server_name
        self._include_display_names = include_display_names

    async def publish(self, user_id: str, position: int) -> None:
        if server_of(user_id) != self._server_name:
            return
        rooms = await self._joined_rooms(user_id)
        if not rooms:
            return
        destinations = set().union(*(await get_joined_servers(self._db, rooms)).values())
        destinations.discard(self._server_name)
        if not destinations:
            return
        device_ids = await self._changes.devices_changed_at(user_id, position)
        # the user's own signatures (of devices by their self-signing key, of their
        # master key by a device) are kept apart from the keys: they go out with them
        signatures = await self._keys.get_signatures([user_id], visible_to="")
        if USER_KEYS in device_ids:
            cross_signing = (await self._keys.get_cross_signing_keys([user_id])).get(user_id, {})
            content: JsonDict = {"user_id": user_id}
            for usage, field in ((MASTER, "master_key"), (SELF_SIGNING, "self_signing_key")):
                if usage in cross_signing:
                    key = cross_signing[usage]
                    public_key = cross_signing_public_key(key)
                    content[field] = _with_signatures(key, public_key, signatures)
            if len(content) > 1:
                # only the newest keys matter
                await self._sender.send_durable_edus(
                    destinations,
                    [(SIGNING_KEY_UPDATE, content)],
                    coalesce=(f"{SIGNING_KEY_UPDATE} {user_id}", position),
                )
        devices = [device_id for device_id in device_ids if device_id != USER_KEYS]
        if devices:
            # a server that was away gets only the user's newest change: its prev_id names
            # the change before, which that server lacks, so it fetches the whole list
            await self._sender.send_durable_edus(
                destinations,
                await self._device_updates(user_id, position, devices, signatures),
                coalesce=(f"{DEVICE_LIST_UPDATE} {user_id}", position),
            )

    async def _device_updates(
        self, user_id: str, position: int, device_ids: list[str], signatures: list[Signature]
    ) -> list[tuple[str, JsonDict]]:
        previous = await self._changes.latest_device_change(user_id, before=position)
        keys = (await self._keys.get_device_keys({user_id: device_ids})).get(user_id, {})
        updates: list[tuple[str, JsonDict]] = []
        for index, device_id in enumerate(device_ids):
            device = await self._devices.get_device(user_id, device_id)
            content: JsonDict = {
                "user_id": user_id,
                "device_id": device_id,
                "stream_id": position,
                # several devices changed at one position follow each other at it, so the
                # receiver sees an unbroken chain
                "prev_id": [position] if index else ([] if previous is None else [previous]),
                "deleted": device is None,
            }
            if device is not None:
                if device_id in keys:
                    content["keys"] = _with_signatures(keys[device_id].keys, device_id, signatures)
                if self._include_display_names and device.display_name is not None:
                    content["device_display_name"] = device.display_name
            updates.append((DEVICE_LIST_UPDATE, content))
        return updates


def _with_signatures(
    key: Mapping[str, Any], target: str | None, signatures: list[Signature]
) -> JsonDict:
    """`key` with the stored signatures of `target` (a device ID or a public key) added."""
    signed = dict(key)
    by_user = {k: dict(v) for k, v in signed.get("signatures", {}).items()}
    for signature in signatures:
        if signature.target_key == target:
            by_user.setdefault(signature.user_id, {})[signature.key_id] = signature.signature
    if by_user:
        signed["signatures"] = by_user
    return signed
