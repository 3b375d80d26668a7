"""Rate limiting: in-memory token buckets per key (client IP, user ID), one set per process.

Each `rc_*` option of homeserver.yaml becomes one `Ratelimiter`. A bucket holds up to
`burst_count` actions and refills at `per_second`; an action that finds the bucket empty is
refused with 429 M_LIMIT_EXCEEDED, `retry_after_ms` in the body and a `Retry-After` header
(spec: client-server-api "Rate limiting"). Buckets live in memory, as in Synapse: a restart
forgets them, and each worker process keeps its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from aiohttp import web

from ranvier.config.models import HomeserverConfig, RatelimitSettings
from ranvier.errors import MatrixError

# aiohttp app key: whether the listener trusts X-Forwarded-For (listener option x_forwarded)
X_FORWARDED = web.AppKey("x_forwarded", bool)

# a bucket that has refilled completely carries no information; drop such buckets once
# there are this many, so that a flood of distinct IPs cannot grow memory without bound
_PRUNE_AT = 10_000


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    error = MatrixError(429, "M_LIMIT_EXCEEDED", "Too Many Requests", retry_after_ms=retry_after_ms)
    # spec: Retry-After in whole seconds, rounded up so a client that obeys it succeeds
    error.headers["Retry-After"] = str(max(1, math.ceil(retry_after_ms / 1000)))
    return error


@dataclass
class _Bucket:
    tokens: float
    updated: float  # clock seconds


class Ratelimiter:
    """Token buckets keyed by anything hashable, all with the same size and refill rate."""

    def __init__(
        self, settings: RatelimitSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second = settings.per_second
        self.burst_count = settings.burst_count
        self._clock = clock
        self._buckets: dict[Hashable, _Bucket] = {}

    def _refilled(self, key: Hashable, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            return _Bucket(self.burst_count, now)
        tokens = min(self.burst_count, bucket.tokens + (now - bucket.updated) * self.per_second)
        return _Bucket(tokens, now)

    def check(self, key: Hashable, *, update: bool = True, cost: float = 1.0) -> None:
        """Raise 429 M_LIMIT_EXCEEDED if the bucket for `key` cannot pay `cost`; otherwise,
        with `update`, take it. `update=False` asks without spending, for limits that only
        count actions that succeed (`record` them afterwards)."""
        now = self._clock()
        bucket = self._refilled(key, now)
        if bucket.tokens < cost:
            raise limit_exceeded(math.ceil((cost - bucket.tokens) / self.per_second * 1000))
        if update:
            bucket.tokens -= cost
            self._store(key, bucket, now)

    def record(self, key: Hashable, cost: float = 1.0) -> None:
        """Count an action that already happened, even if it overdraws the bucket."""
        now = self._clock()
        bucket = self._refilled(key, now)
        bucket.tokens -= cost
        self._store(key, bucket, now)

    def _store(self, key: Hashable, bucket: _Bucket, now: float) -> None:
        self._buckets[key] = bucket
        if len(self._buckets) >= _PRUNE_AT:
            self._prune(now)

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self.per_second >= self.burst_count
        ]
        for key in full:
            del self._buckets[key]


@dataclass
class Ratelimiters:
    """One limiter per configured `rc_*` option, built once per process in server.py."""

    message: Ratelimiter
    registration: Ratelimiter
    registration_token_validity: Ratelimiter
    login_address: Ratelimiter
    login_account: Ratelimiter
    login_failed_attempts: Ratelimiter

    @classmethod
    def from_config(
        cls, config: HomeserverConfig, clock: Callable[[], float] = time.monotonic
    ) -> Ratelimiters:
        return cls(
            message=Ratelimiter(config.rc_message, clock),
            registration=Ratelimiter(config.rc_registration, clock),
            registration_token_validity=Ratelimiter(config.rc_registration_token_validity, clock),
            login_address=Ratelimiter(config.rc_login.address, clock),
            login_account=Ratelimiter(config.rc_login.account, clock),
            login_failed_attempts=Ratelimiter(config.rc_login.failed_attempts, clock),
        )

    def check_message(self, user_id: str, *, is_admin: bool) -> None:
        """rc_message, per sending user: call before sending an event to a room."""
        if not is_exempt(is_admin=is_admin):
            self.message.check(user_id)


def is_exempt(*, is_admin: bool) -> bool:
    """Whether a requester skips per-user limits (rc_message): server admins, whom Ranvier
    trusts to run bots and bulk tools. Application services that set `rate_limited: false`
    join them when application services arrive."""
    return is_admin


def client_address(request: web.Request) -> str:
    """The client's IP: the first X-Forwarded-For hop on listeners with `x_forwarded: true`
    (behind a reverse proxy every request would otherwise share the proxy's address)."""
    if request.app.get(X_FORWARDED, False):
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",", 1)[0].strip()
        if first:
            return first
    return request.remote or "unknown"
