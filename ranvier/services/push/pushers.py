"""Pushers (spec: client-server-api "Pushers") and their delivery to push gateways
(spec: push-gateway-api, POST /_matrix/push/v1/notify).

Each pusher has one delivery task. It pushes the owner's notifying actions in stream
order, one request per event; on a failure it retries the same event with exponential
backoff (as Synapse: from one second to an hour, giving the event up after a day), so a
gateway that is down gets everything once it is back, in order. Progress is stored, so a
restart resumes where delivery stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.protocol.json_limits import dumps_for_serving
from ranvier.protocol.push_rules import tweaks
from ranvier.services.push.actions import PushActionService
from ranvier.services.push.email_pusher import EMAIL_APP_ID, EMAIL_KIND, EmailPushers
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.event_push_actions import PushAction
from ranvier.storage.pushers import Pusher, PusherStore
from ranvier.storage.users import User

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
NOTIFY_PATH = "/_matrix/push/v1/notify"
# spec: pushers/set field limits
MAX_APP_ID_CHARS = 64
MAX_PUSHKEY_BYTES = 512
MAX_BACKOFF_SECONDS = 3600.0
GIVE_UP_AFTER_SECONDS = 24 * 3600.0
REQUEST_TIMEOUT_SECONDS = 20.0
BATCH = 50


def missing(names: Collection[str]) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", "Missing parameters: " + ", ".join(names))


def invalid(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


@dataclass(frozen=True)
class PusherRequest:
    """A pusher as POST /pushers/set asks for it (a kind other than null)."""

    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    lang: str
    profile_tag: str | None
    # stored and handed back as the client sent it: gateways read keys the spec does not name
    data: JsonDict
    # data.url and data.format
    url: str | None
    format: str | None


def check_pusher_key(app_id: str, pushkey: str) -> None:
    if len(app_id) > MAX_APP_ID_CHARS:
        raise invalid(f"'app_id' is at most {MAX_APP_ID_CHARS} characters")
    if len(pushkey.encode()) > MAX_PUSHKEY_BYTES:
        raise invalid(f"'pushkey' is at most {MAX_PUSHKEY_BYTES} bytes")


def check_gateway_url(url: str | None) -> None:
    """The gateway URL of an http pusher: http(s) with the spec's notify path. `data.format`
    is not checked: any value but "event_id_only" is kept and pushes the full format (as
    Synapse; SyTest sets "id_event_only" and reads it back)."""
    if url is None:
        raise missing(["data.url"])
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid("'data.url' must be an http or https URL")
    if not parts.path.endswith(NOTIFY_PATH):
        raise invalid(f"'data.url' must have the path {NOTIFY_PATH}")


def render(pusher: Pusher) -> JsonDict:
    """spec: GET /pushers - a pusher as its owner sees it."""
    body: JsonDict = {
        "app_display_name": pusher.app_display_name,
        "app_id": pusher.app_id,
        "data": pusher.data,
        "device_display_name": pusher.device_display_name,
        "kind": pusher.kind,
        "lang": pusher.lang,
        "pushkey": pusher.pushkey,
    }
    if pusher.profile_tag is not None:
        body["profile_tag"] = pusher.profile_tag
    return body


class PusherService:
    def __init__(
        self,
        db: Database,
        store: PusherStore,
        actions: PushActionService,
        loader: EventLoader,
        current_stream_ordering: Callable[[], int],
        initial_backoff_seconds: float = 1.0,
        *,
        server_name: str,
        get_user: Callable[[str], Awaitable[User | None]],
        include_content: bool = True,
        group_unread_count_by_room: bool = True,
        email: EmailPushers | None = None,
    ) -> None:
        # None: email notifications are off (email.enable_notifs), so no email pusher runs
        self._email = email
        self._db = db
        self._store = store
        self._actions = actions
        self._loader = loader
        self._current_stream_ordering = current_stream_ordering
        self._initial_backoff = initial_backoff_seconds
        self._include_content = include_content
        self._local_suffix = ":" + server_name
        self._get_user = get_user
        # deactivation checks in flight, kept so they are not collected mid-way
        self._checks: set[asyncio.Task[None]] = set()
        self._group_by_room = group_unread_count_by_room
        self._user_id_to_pushers: dict[str, dict[int, Pusher]] = {}
        self._pusher_id_to_wakeup: dict[int, asyncio.Event] = {}
        self._pusher_id_to_task: dict[int, asyncio.Task[None]] = {}
        # the unread count each pusher last sent, so a receipt pushes only a changed one
        self._pusher_id_to_badge: dict[int, int] = {}
        # badge updates in flight, kept so they are not collected mid-way
        self._badge_updates: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    # -- the API -------------------------------------------------------------------------

    async def get_pushers(self, user_id: str) -> list[JsonDict]:
        return [render(p) for p in await self._store.get_for_user(user_id)]

    async def admin_get_pushers(self, user_id: str) -> JsonDict:
        """Synapse's admin API: a local user's pushers, with their total."""
        if not user_id.endswith(self._local_suffix):
            raise MatrixError(400, "M_UNKNOWN", "Can only look up local users")
        if await self._get_user(user_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "User not found")
        pushers = await self.get_pushers(user_id)
        return {"pushers": pushers, "total": len(pushers)}

    async def delete_pusher(self, user_id: str, app_id: str, pushkey: str) -> None:
        """POST /pushers/set with kind null."""
        check_pusher_key(app_id, pushkey)
        deleted = await self._store.delete_pusher(user_id, app_id, pushkey)
        if deleted is not None:
            self._stop(deleted)

    async def set_pusher(
        self, user_id: str, device_id: str | None, request: PusherRequest, *, append: bool
    ) -> None:
        """POST /pushers/set: create or replace a pusher, from the session on `device_id`."""
        check_pusher_key(request.app_id, request.pushkey)
        if request.kind == EMAIL_KIND:
            if self._email is None:
                raise invalid("Email notifications are not enabled on this server")
            await self._email.check(user_id, request.app_id, request.pushkey)
        elif request.kind != "http":
            raise invalid(f"Unsupported pusher kind {request.kind!r}")
        else:
            check_gateway_url(request.url)
        pusher, removed = await self._store.set_pusher(
            Pusher(
                id=0,
                user_id=user_id,
                kind=request.kind,
                app_id=request.app_id,
                pushkey=request.pushkey,
                app_display_name=request.app_display_name,
                device_display_name=request.device_display_name,
                profile_tag=request.profile_tag,
                lang=request.lang,
                data=request.data,
                created_ts=now_ms(),
                # a new pusher pushes what happens from now on, not the past
                last_stream_ordering=self._current_stream_ordering(),
                device_id=device_id,
            ),
            append=append,
        )
        for old in removed:
            self._stop(old)
        self._start(pusher)

    async def add_email_pusher_for_new_user(self, user_id: str, address: str) -> None:
        """Registration with a validated email address, with `email.notif_for_new_users`
        (the caller checks it): the user gets notification mails there, as in Synapse."""
        if self._email is None:
            return
        await self.set_pusher(
            user_id,
            None,
            PusherRequest(
                app_id=EMAIL_APP_ID,
                pushkey=address,
                kind=EMAIL_KIND,
                app_display_name="Email Notifications",
                device_display_name=address,
                lang="en",
                profile_tag=None,
                data={},
                url=None,
                format=None,
            ),
            append=True,
        )

    async def remove_for_devices(self, user_id: str, device_ids: list[str]) -> None:
        """DeviceService.on_devices_deleted: a logged-out device's pushers go with it (as
        Synapse), so a phone that logged out, or whose session a password change ended,
        gets no more pushes."""
        for pusher in await self._store.delete_for_devices(user_id, device_ids):
            self._stop(pusher)

    # -- delivery ------------------------------------------------------------------------

    async def start(self) -> None:
        for pusher in await self._store.get_all():
            self._start(pusher)

    async def stop(self) -> None:
        tasks = [*self._pusher_id_to_task.values(), *self._badge_updates]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pusher_id_to_task.clear()
        if self._email is not None:
            await self._email.stop_all()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def on_new_actions(self, user_ids: Collection[str]) -> None:
        """PushActionService.on_new_actions: wake the pushers of these users."""
        for user_id in user_ids:
            for pusher_id in self._user_id_to_pushers.get(user_id, {}):
                wakeup = self._pusher_id_to_wakeup.get(pusher_id)
                if wakeup is not None:
                    wakeup.set()
            if self._email is not None:
                self._email.wake(list(self._user_id_to_pushers.get(user_id, {})))

    async def on_read(self, user_id: str) -> None:
        """PushActionService.on_read: a receipt changed what the user has unread, so their
        devices get the new badge count (as Synapse; spec push-gateway-api: a notification
        with only `counts` updates the badge). Sent in the background, once, without
        retries: the next push carries the count anyway."""
        for pusher in list(self._user_id_to_pushers.get(user_id, {}).values()):
            if pusher.kind == EMAIL_KIND:
                continue
            task = asyncio.create_task(self._update_badge(pusher))
            self._badge_updates.add(task)
            task.add_done_callback(self._badge_updates.discard)

    async def _update_badge(self, pusher: Pusher) -> None:
        unread = await self._badge(pusher.user_id)
        if self._pusher_id_to_badge.get(pusher.id) == unread:
            return
        self._pusher_id_to_badge[pusher.id] = unread
        device = {
            "app_id": pusher.app_id,
            "pushkey": pusher.pushkey,
            "pushkey_ts": pusher.created_ts // 1000,
            "data": _device_data(pusher),
        }
        body = {"notification": {"counts": {"unread": unread}, "devices": [device]}}
        try:
            await self._post(pusher, body)
        except (aiohttp.ClientError, TimeoutError, GatewayError) as exc:
            logger.info("Badge update to %s failed: %s", pusher.app_id, exc)
        except Exception:
            logger.exception("Badge update to %s failed", pusher.app_id)

    def on_user_changed(self, user_id: str) -> None:
        """UserStore.on_user_changed: a deactivated user's pushers are deleted (as Synapse),
        so their devices stop getting pushes."""
        if not self._user_id_to_pushers.get(user_id):
            return
        task = asyncio.create_task(self._drop_if_deactivated(user_id))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _drop_if_deactivated(self, user_id: str) -> None:
        user = await self._get_user(user_id)
        if user is None or user.deactivated:
            for pusher in await self._store.delete_for_user(user_id):
                self._stop(pusher)

    def _start(self, pusher: Pusher) -> None:
        self._stop(pusher)
        if pusher.kind == EMAIL_KIND:
            if self._email is not None:
                self._user_id_to_pushers.setdefault(pusher.user_id, {})[pusher.id] = pusher
                self._email.start(pusher)
            return
        self._user_id_to_pushers.setdefault(pusher.user_id, {})[pusher.id] = pusher
        wakeup = asyncio.Event()
        wakeup.set()
        self._pusher_id_to_wakeup[pusher.id] = wakeup
        self._pusher_id_to_task[pusher.id] = asyncio.create_task(self._run(pusher, wakeup))

    def _stop(self, pusher: Pusher) -> None:
        self._user_id_to_pushers.get(pusher.user_id, {}).pop(pusher.id, None)
        self._pusher_id_to_wakeup.pop(pusher.id, None)
        self._pusher_id_to_badge.pop(pusher.id, None)
        if self._email is not None and pusher.kind == EMAIL_KIND:
            self._email.stop(pusher.id)
        task = self._pusher_id_to_task.pop(pusher.id, None)
        if task is not None:
            task.cancel()

    async def _run(self, pusher: Pusher, wakeup: asyncio.Event) -> None:
        position = pusher.last_stream_ordering
        while True:
            await wakeup.wait()
            wakeup.clear()
            try:
                while batch := await self._actions.pending(pusher.user_id, position, BATCH):
                    for action in batch:
                        rejected = await self._deliver_with_retries(pusher, action)
                        position = action.stream_ordering
                        await self._store.set_progress(pusher.id, position)
                        if rejected:
                            logger.info("Gateway rejected pushkey of %s; removing", pusher.app_id)
                            await self._store.delete_pusher(
                                pusher.user_id, pusher.app_id, pusher.pushkey
                            )
                            self._stop(pusher)
                            return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Pusher %s of %s failed", pusher.app_id, pusher.user_id)

    async def _deliver_with_retries(self, pusher: Pusher, action: PushAction) -> bool:
        """Push one event until the gateway takes it; returns whether it rejected the key."""
        backoff = self._initial_backoff
        first_failure: float | None = None
        body = await self._notification(pusher, action)
        while True:
            try:
                return await self._post(pusher, body)
            except (aiohttp.ClientError, TimeoutError, GatewayError) as exc:
                now = time.monotonic()
                if first_failure is None:
                    first_failure = now
                    await self._store.set_failing(pusher.id, now_ms())
                if now - first_failure > GIVE_UP_AFTER_SECONDS:
                    logger.warning("Giving up pushing %s to %s", action.event_id, pusher.app_id)
                    return False
                logger.info(
                    "Push to %s failed (%s); retrying in %.0fs", pusher.app_id, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _post(self, pusher: Pusher, body: JsonDict) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
            )
        async with self._session.post(
            pusher.data["url"],
            data=dumps_for_serving(body),
            headers={"Content-Type": "application/json"},
        ) as response:
            if response.status != 200:
                raise GatewayError(f"HTTP {response.status}")
            try:
                reply = await response.json(content_type=None)
            except ValueError:
                reply = {}
        rejected = reply.get("rejected") if isinstance(reply, dict) else None
        return isinstance(rejected, list) and pusher.pushkey in rejected

    async def _notification(self, pusher: Pusher, action: PushAction) -> JsonDict:
        unread = await self._badge(pusher.user_id)
        self._pusher_id_to_badge[pusher.id] = unread
        # Synapse always sends the count, 0 included, and clients clear their badge on it
        counts = {"unread": unread}
        device = {
            "app_id": pusher.app_id,
            "pushkey": pusher.pushkey,
            "pushkey_ts": pusher.created_ts // 1000,
            "data": _device_data(pusher),
            "tweaks": tweaks(action.actions),
        }
        notification: JsonDict = {
            "event_id": action.event_id,
            "room_id": action.room_id,
            "counts": counts,
            "devices": [device],
        }
        if pusher.data.get("format") == "event_id_only":
            return {"notification": notification}
        event = await self._loader.get_event(action.event_id)
        if event is not None:
            # the field's old name, which Synapse still sends and older gateways (and
            # SyTest) read
            notification["id"] = event.event_id
            notification["type"] = event.type
            notification["sender"] = event.sender
            if self._include_content:
                notification["content"] = event.content
            # an encrypted event may be a mention: its rules cannot be read (as Synapse)
            high = _is_high(action.actions) or event.type == "m.room.encrypted"
            notification["prio"] = "high" if high else "low"
            if event.type == "m.room.member" and event.state_key is not None:
                notification["membership"] = event.content.get("membership")
                notification["user_is_target"] = event.state_key == pusher.user_id
            names = await self._room_names(event.room_id, event.sender)
            if "room_name" not in names and "room_alias" in names:
                # a room without a name is shown by its alias (as Synapse names it)
                names["room_name"] = names["room_alias"]
            notification.update(names)
        return {"notification": notification}

    async def _badge(self, user_id: str) -> int:
        rooms = await state_store.get_rooms_for_user(self._db, user_id)
        counts = await self._actions.unread_counts(user_id, list(rooms))
        if self._group_by_room:
            return sum(1 for room in counts.values() if room["notification_count"] > 0)
        return sum(int(room["notification_count"]) for room in counts.values())

    async def _room_names(self, room_id: str, sender: str) -> JsonDict:
        state = await state_store.get_current_state_ids(self._db, room_id)
        keys = {
            "room_name": ("m.room.name", ""),
            "room_alias": ("m.room.canonical_alias", ""),
            "sender_display_name": ("m.room.member", sender),
        }
        loaded = await self._loader.get_events(state[k] for k in keys.values() if k in state)
        fields = {"room_name": "name", "room_alias": "alias", "sender_display_name": "displayname"}
        found: JsonDict = {}
        for name, key in keys.items():
            event = loaded.get(state.get(key, ""))
            value = event.content.get(fields[name]) if event is not None else None
            if isinstance(value, str) and value:
                found[name] = value
        return found


def _device_data(pusher: Pusher) -> JsonDict:
    """The pusher's data as its gateway gets it: without the gateway's own URL."""
    return {key: value for key, value in pusher.data.items() if key != "url"}


class GatewayError(Exception):
    pass


def _is_high(actions: list[Any]) -> bool:
    found = tweaks(actions)
    return bool(found.get("highlight")) or "sound" in found
