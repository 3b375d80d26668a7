"""Email pushers: a mail about the user's unread notifications, some time after they
arrive, batched and throttled per room as Synapse does.

A notification may be mailed once it is `email.notif_delay_before_mail` old and the
throttle of its room has passed. When one is due, a single mail tells about every
notification not yet mailed that is still unread (receipts clear them), and each room in it
gets a new throttle: the delay at first, then 144 times the previous (so straight to the
day-long maximum, as Synapse's multiplier), released back to the delay when the
notification came more than 12 hours after the one before it. Progress (how far mails have
told) and the throttles are stored, so a restart neither mails again nor forgets a throttle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.services.push.actions import PushActionService
from ranvier.services.push.email_mail import NotificationMail
from ranvier.storage.email_notifications import EmailThrottleStore, Throttle
from ranvier.storage.event_push_actions import PushAction
from ranvier.storage.pushers import Pusher, PusherStore

logger = logging.getLogger(__name__)

EMAIL_KIND = "email"
EMAIL_APP_ID = "m.email"
THROTTLE_MAX_MS = 24 * 3600 * 1000
THROTTLE_MULTIPLIER = 144
THROTTLE_RESET_AFTER_MS = 12 * 3600 * 1000
# notifications told about in one mail, at most; the rest are counted, not listed
MAX_PER_MAIL = 100
# a mail that could not be sent is tried again this much later
RETRY_AFTER_MS = 60_000


def next_throttle(
    current: Throttle | None, gap_ms: int | None, delay_ms: int, now: int
) -> Throttle:
    """The room's throttle after a mail sent at `now` about a notification that came
    `gap_ms` after the user's previous one (None: unknown, which keeps the throttle)."""
    if current is None or current.throttle_ms == 0 or (gap_ms or 0) > THROTTLE_RESET_AFTER_MS:
        return Throttle(now, delay_ms)
    return Throttle(now, min(current.throttle_ms * THROTTLE_MULTIPLIER, THROTTLE_MAX_MS))


def due_at(action: PushAction, throttle: Throttle | None, delay_ms: int) -> int:
    ready = action.received_ts + delay_ms
    return ready if throttle is None else max(ready, throttle.may_send_at)


@dataclass
class _Running:
    pusher: Pusher
    wakeup: asyncio.Event
    task: asyncio.Task[None]


class EmailPushers:
    """The delivery of every email pusher: one task each, woken by new notifications and
    by its own timer."""

    def __init__(
        self,
        *,
        pushers: PusherStore,
        throttles: EmailThrottleStore,
        actions: PushActionService,
        mail: NotificationMail,
        delay_before_mail_ms: int,
        current_stream_ordering: Callable[[], int],
        has_validated_email: Callable[[str, str], Awaitable[bool]],
    ) -> None:
        self._pushers = pushers
        self._throttles = throttles
        self._actions = actions
        self._mail = mail
        self._delay_ms = delay_before_mail_ms
        self._current_stream_ordering = current_stream_ordering
        self._has_validated_email = has_validated_email
        self._pusher_id_to_running: dict[int, _Running] = {}

    async def check(self, user_id: str, app_id: str, pushkey: str) -> None:
        """POST /pushers/set with kind "email": Synapse's rules, the app ID is m.email and
        the pushkey an address the user has validated on this server."""
        if app_id != EMAIL_APP_ID:
            raise MatrixError(
                400, "M_INVALID_PARAM", f"An email pusher's app_id must be {EMAIL_APP_ID!r}"
            )
        if not await self._has_validated_email(user_id, pushkey):
            raise MatrixError(
                400,
                "M_THREEPID_NOT_FOUND",
                "The pushkey of an email pusher must be a validated email address of this account",
            )

    def start(self, pusher: Pusher) -> None:
        self.stop(pusher.id)
        wakeup = asyncio.Event()
        wakeup.set()
        task = asyncio.create_task(self._run(pusher, wakeup))
        self._pusher_id_to_running[pusher.id] = _Running(pusher, wakeup, task)

    def stop(self, pusher_id: int) -> None:
        running = self._pusher_id_to_running.pop(pusher_id, None)
        if running is not None:
            running.task.cancel()

    def wake(self, pusher_ids: Collection[int]) -> None:
        for pusher_id in pusher_ids:
            running = self._pusher_id_to_running.get(pusher_id)
            if running is not None:
                running.wakeup.set()

    async def stop_all(self) -> None:
        tasks = [running.task for running in self._pusher_id_to_running.values()]
        self._pusher_id_to_running.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, pusher: Pusher, wakeup: asyncio.Event) -> None:
        position = pusher.last_stream_ordering
        room_to_throttle = await self._throttles.get(pusher.id)
        while True:
            await_until: int | None
            try:
                position, await_until = await self._process(pusher, position, room_to_throttle)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Email pusher of %s failed", pusher.user_id)
                await_until = now_ms() + RETRY_AFTER_MS
            timeout = None if await_until is None else max(0, await_until - now_ms()) / 1000
            try:
                async with asyncio.timeout(timeout):
                    await wakeup.wait()
            except TimeoutError:
                pass
            wakeup.clear()

    async def _process(
        self, pusher: Pusher, position: int, room_to_throttle: dict[str, Throttle]
    ) -> tuple[int, int | None]:
        """Mail what is due; returns the new position and when to look again (None: when
        something new arrives)."""
        # read before the unread ones, so nothing persisted in between is skipped
        current = self._current_stream_ordering()
        unread = await self._actions.unread_pending(pusher.user_id, position, MAX_PER_MAIL + 1)
        if not unread:
            if current > position:
                await self._pushers.set_progress(pusher.id, current)
            return max(position, current), None
        now = now_ms()
        soonest = min(due_at(a, room_to_throttle.get(a.room_id), self._delay_ms) for a in unread)
        if soonest > now:
            return position, soonest
        await self._mail.send(pusher, unread[:MAX_PER_MAIL], more=len(unread) > MAX_PER_MAIL)
        newest = unread[-1].stream_ordering
        await self._pushers.set_progress(pusher.id, newest)
        changed: dict[str, Throttle] = {}
        previous_ts = await self._actions.received_ts_before(
            pusher.user_id, unread[0].stream_ordering
        )
        for action in unread:
            gap = None if previous_ts is None else action.received_ts - previous_ts
            previous_ts = action.received_ts
            # one mail moves each room's throttle once, however many of its messages it tells
            if action.room_id not in changed:
                changed[action.room_id] = next_throttle(
                    room_to_throttle.get(action.room_id), gap, self._delay_ms, now
                )
        await self._throttles.set(pusher.id, changed)
        room_to_throttle.update(changed)
        # more may be unread past the mail's limit: look again at once
        return newest, (now if len(unread) > MAX_PER_MAIL else None)
