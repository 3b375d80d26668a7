"""Rate limiting: in-memory token buckets per key (client IP, user ID), one set per process.

Each `rc_*` option of homeserver.yaml becomes one `Ratelimiter`. A bucket holds up to
`burst_count` actions and refills at `per_second`; an action that finds the bucket empty is
refused with 429 M_LIMIT_EXCEEDED, `retry_after_ms` in the body and a `Retry-After` header
(spec: client-server-api "Rate limiting"). Buckets live in memory, as in Synapse: a restart
forgets them, and each worker process keeps its own.

Memory: a full bucket carries no information (a new one starts full), so a bucket is
forgotten once it has been idle for `burst_count / per_second` seconds, the time an empty
bucket takes to refill. Buckets are kept in order of last use, so expiry only looks at the
oldest ones: a timer (and every new key) drops the expired head, and no check ever scans
the others. A flood of distinct keys (one per IP address) is bounded by MAX_KEYS per
limiter: past it the least recently used bucket is forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from ranvier.config.models import HomeserverConfig, RatelimitSettings
from ranvier.errors import MatrixError
from ranvier.requester import UserRequester

logger = logging.getLogger(__name__)

# aiohttp app key: whether the listener trusts X-Forwarded-For (listener option x_forwarded)
X_FORWARDED = web.AppKey("x_forwarded", bool)

# The most buckets one limiter keeps: about 12 MB at ~240 bytes a bucket (key included), so
# the seven limiters stay under 100 MB whatever arrives. Forgetting the least recently used
# bucket when a new key arrives at the cap gives that client, at worst, a fresh burst;
# refusing the new key instead would lock out every newcomer during a flood.
MAX_KEYS = 50_000

# the expiry timer never wakes more often than this, however soon the oldest bucket expires
_TIMER_FLOOR_SECONDS = 5.0
# at most one "limiter full" warning per limiter in this many seconds
_WARN_EVERY_SECONDS = 300.0


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    error = MatrixError(429, "M_LIMIT_EXCEEDED", "Too Many Requests", retry_after_ms=retry_after_ms)
    # spec: Retry-After in whole seconds, rounded up so a client that obeys it succeeds
    error.headers["Retry-After"] = str(max(1, math.ceil(retry_after_ms / 1000)))
    return error


def is_exempt(requester: UserRequester) -> bool:
    """The one rule for who skips per-user rate limits, so every per-user limit follows it.
    Server admins do: Ranvier trusts them to run bots and bulk tools. So does an application
    service's sender, always, and every user a service acts as when its registration says
    `rate_limited: false` (as Synapse)."""
    if requester.is_admin:
        return True
    service = requester.app_service
    return service is not None and (requester.user_id == service.sender or not service.rate_limited)


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens  # as of `updated`; below 0 when `record` overdrew it
        self.updated = updated  # clock seconds of the last spend


class Ratelimiter:
    """Token buckets keyed by anything hashable, all with the same size and refill rate."""

    def __init__(
        self,
        settings: RatelimitSettings,
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "rate limiter",
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.per_second = settings.per_second
        self.burst_count = settings.burst_count
        self.name = name
        self.max_keys = max_keys
        # how long an empty bucket takes to refill: idle this long, any bucket that was not
        # overdrawn is full again
        self.forget_after = settings.burst_count / settings.per_second
        self._clock = clock
        # least recently spent first, so the buckets due to expire are at the head
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._evicted = 0
        self._warned_at: float | None = None

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, bucket: _Bucket | None, now: float) -> float:
        if bucket is None:
            return self.burst_count
        return min(self.burst_count, bucket.tokens + (now - bucket.updated) * self.per_second)

    def check(self, key: Hashable, *, update: bool = True, cost: float = 1.0) -> None:
        """Raise 429 M_LIMIT_EXCEEDED if the bucket for `key` cannot pay `cost`; otherwise,
        with `update`, take it. `update=False` asks without spending, for limits that only
        count actions that succeed (`record` them afterwards)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        tokens = self._tokens(bucket, now)
        if tokens < cost:
            raise limit_exceeded(math.ceil((cost - tokens) / self.per_second * 1000))
        if update:
            self._spend(key, bucket, tokens - cost, now)

    def check_user(self, requester: UserRequester) -> None:
        """A per-user limit: `check` keyed by the user, unless the requester is exempt."""
        if not is_exempt(requester):
            self.check(requester.user_id)

    def record(self, key: Hashable, cost: float = 1.0) -> None:
        """Count an action that already happened, even if it overdraws the bucket."""
        now = self._clock()
        bucket = self._buckets.get(key)
        self._spend(key, bucket, self._tokens(bucket, now) - cost, now)

    def _spend(self, key: Hashable, bucket: _Bucket | None, tokens: float, now: float) -> None:
        if bucket is not None:
            bucket.tokens, bucket.updated = tokens, now
            # the clock is monotonic, so the end stays the most recently spent
            self._buckets.move_to_end(key)
            return
        self._make_room(now)
        self._buckets[key] = _Bucket(tokens, now)
        self._schedule_expiry(now)

    def _make_room(self, now: float) -> None:
        # each bucket is dropped once, so this costs O(1) per new key over time
        self.expire(now)
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)
            self._evicted += 1
        if self._evicted and (
            self._warned_at is None or now - self._warned_at >= _WARN_EVERY_SECONDS
        ):
            logger.warning(
                "%s holds %d clients, its maximum: forgot %d least recently seen",
                self.name,
                self.max_keys,
                self._evicted,
            )
            self._warned_at, self._evicted = now, 0

    def expire(self, now: float | None = None) -> int:
        """Forget the buckets idle for `forget_after` seconds, looking only at those;
        returns how many were forgotten. The timer calls this; tests may too."""
        if now is None:
            now = self._clock()
        forgotten = 0
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self.forget_after:
                break  # the rest were spent later still
            tokens = bucket.tokens + (now - bucket.updated) * self.per_second
            if bucket.tokens >= 0 or tokens >= self.burst_count:
                # full again: tokens + forget_after * per_second >= burst_count
                del self._buckets[key]
                forgotten += 1
            else:
                # overdrawn by `record`: look again once it has had time to refill, counting
                # from here; the refill so far is kept, so its limit is unchanged
                bucket.tokens, bucket.updated = tokens, now
                self._buckets.move_to_end(key)
        return forgotten

    def _schedule_expiry(self, now: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a command-line tool, a unit test): new keys still expire old
        if self._timer is not None and self._timer_loop is loop:
            return
        oldest = next(iter(self._buckets.values()))
        delay = max(oldest.updated + self.forget_after - now, _TIMER_FLOOR_SECONDS)
        self._timer = loop.call_later(delay, self._on_timer)
        self._timer_loop = loop

    def _on_timer(self) -> None:
        self._timer = None
        now = self._clock()
        self.expire(now)
        if self._buckets:
            self._schedule_expiry(now)


class MessageLimitOverride(Protocol):
    """One user's own `rc_message` (the override_ratelimit admin API)."""

    @property
    def messages_per_second(self) -> int: ...

    @property
    def burst_count(self) -> int: ...


@dataclass
class Ratelimiters:
    """One limiter per configured `rc_*` option, built once per process in server.py."""

    message: Ratelimiter
    registration: Ratelimiter
    registration_token_validity: Ratelimiter
    third_party_invite: Ratelimiter
    login_address: Ratelimiter
    login_account: Ratelimiter
    login_failed_attempts: Ratelimiter
    # requestToken (mails sent), per client IP and per address
    threepid_validation: Ratelimiter
    # user ID -> that user's own message limit; a rate of 0 lifts it
    message_overrides: Mapping[str, MessageLimitOverride] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    # one limiter per overriding (rate, burst), keyed by user like `message`
    _override_limiters: dict[tuple[int, int], Ratelimiter] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls,
        config: HomeserverConfig,
        clock: Callable[[], float] = time.monotonic,
        message_overrides: Mapping[str, MessageLimitOverride] | None = None,
    ) -> Ratelimiters:
        def limiter(settings: RatelimitSettings, option: str) -> Ratelimiter:
            return Ratelimiter(settings, clock, name=option)

        return cls(
            message=limiter(config.rc_message, "rc_message"),
            message_overrides={} if message_overrides is None else message_overrides,
            clock=clock,
            registration=limiter(config.rc_registration, "rc_registration"),
            registration_token_validity=limiter(
                config.rc_registration_token_validity, "rc_registration_token_validity"
            ),
            third_party_invite=limiter(config.rc_third_party_invite, "rc_third_party_invite"),
            login_address=limiter(config.rc_login.address, "rc_login.address"),
            login_account=limiter(config.rc_login.account, "rc_login.account"),
            login_failed_attempts=limiter(
                config.rc_login.failed_attempts, "rc_login.failed_attempts"
            ),
            threepid_validation=limiter(config.rc_3pid_validation, "rc_3pid_validation"),
        )

    def check_message(self, requester: UserRequester) -> None:
        """rc_message, per sending user: call before sending an event to a room. A user
        with an override is held to their own limit instead."""
        override = self.message_overrides.get(requester.user_id)
        if override is None:
            self.message.check_user(requester)
            return
        if override.messages_per_second <= 0:
            return
        shape = (override.messages_per_second, max(override.burst_count, 1))
        limiter = self._override_limiters.get(shape)
        if limiter is None:
            settings = RatelimitSettings(per_second=shape[0], burst_count=shape[1])
            limiter = Ratelimiter(settings, self.clock, name="rc_message (overridden)")
            self._override_limiters[shape] = limiter
        limiter.check_user(requester)


def client_address(request: web.Request) -> str:
    """The client's IP: the first X-Forwarded-For hop on listeners with `x_forwarded: true`
    (behind a reverse proxy every request would otherwise share the proxy's address)."""
    if request.app.get(X_FORWARDED, False):
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",", 1)[0].strip()
        if first:
            return first
    return request.remote or "unknown"
