"""Token buckets: bursts, refill, retry hints, and the config's Synapse defaults."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

import pytest

from ranvier.config.models import HomeserverConfig, RatelimitSettings
from ranvier.errors import MatrixError
from ranvier.http.ratelimit import Ratelimiter, Ratelimiters, is_exempt
from ranvier.requester import UserRequester


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(per_second: float, burst_count: float) -> tuple[Ratelimiter, FakeClock]:
    clock = FakeClock()
    settings = RatelimitSettings(per_second=per_second, burst_count=burst_count)
    return Ratelimiter(settings, clock), clock


def test_burst_then_refused_with_retry_hint() -> None:
    bucket, clock = limiter(per_second=0.5, burst_count=3)
    for _ in range(3):
        bucket.check("ip")
    with pytest.raises(MatrixError) as refused:
        bucket.check("ip")
    error = refused.value
    assert (error.status, error.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert error.body()["retry_after_ms"] == 2000
    assert error.headers == {"Retry-After": "2"}
    clock.now += 2.0
    bucket.check("ip")
    with pytest.raises(MatrixError):
        bucket.check("ip")


def test_keys_are_independent() -> None:
    bucket, _ = limiter(per_second=1, burst_count=1)
    bucket.check("a")
    bucket.check("b")
    with pytest.raises(MatrixError):
        bucket.check("a")


def test_refill_never_exceeds_the_burst() -> None:
    bucket, clock = limiter(per_second=1, burst_count=2)
    bucket.check("k")
    clock.now += 1000
    bucket.check("k")
    bucket.check("k")
    with pytest.raises(MatrixError):
        bucket.check("k")


def test_check_without_update_spends_nothing_and_record_spends() -> None:
    bucket, _ = limiter(per_second=0.1, burst_count=2)
    for _ in range(5):
        bucket.check("k", update=False)
    bucket.record("k")
    bucket.record("k")
    with pytest.raises(MatrixError) as refused:
        bucket.check("k", update=False)
    assert refused.value.body()["retry_after_ms"] == 10_000


def test_retry_after_header_rounds_up() -> None:
    bucket, _ = limiter(per_second=3, burst_count=1)
    bucket.check("k")
    with pytest.raises(MatrixError) as refused:
        bucket.check("k")
    assert refused.value.body()["retry_after_ms"] == 334
    assert refused.value.headers["Retry-After"] == "1"


def test_synapse_defaults_and_partial_settings() -> None:
    config = HomeserverConfig(
        server_name="example.com",
        signing_key_path="key",
        rc_login={"failed_attempts": {"burst_count": 10}},
    )
    assert (config.rc_message.per_second, config.rc_message.burst_count) == (0.2, 10)
    assert (config.rc_registration.per_second, config.rc_registration.burst_count) == (0.17, 3)
    assert config.rc_login.address == RatelimitSettings(per_second=0.003, burst_count=5)
    assert config.rc_login.failed_attempts == RatelimitSettings(per_second=0.17, burst_count=10)
    limiters = Ratelimiters.from_config(config)
    assert limiters.login_failed_attempts.burst_count == 10


def test_a_bucket_that_never_refills_is_refused() -> None:
    with pytest.raises(ValueError, match="per_second"):
        HomeserverConfig(
            server_name="example.com", signing_key_path="key", rc_message={"per_second": 0}
        )


def user(user_id: str, *, is_admin: bool = False) -> UserRequester:
    return UserRequester(user_id, "DEVICE", is_guest=False, is_admin=is_admin, access_token_id=1)


def test_per_user_limits_spare_admins() -> None:
    config = HomeserverConfig(
        server_name="example.com",
        signing_key_path="key",
        rc_message={"per_second": 0.001, "burst_count": 2},
    )
    limiters = Ratelimiters.from_config(config, FakeClock())
    alice, admin = user("@user:example.com"), user("@admin:example.com", is_admin=True)
    for _ in range(2):
        limiters.check_message(alice)
    with pytest.raises(MatrixError):
        limiters.check_message(alice)
    for _ in range(5):
        limiters.check_message(admin)
    limiters.check_message(user("@other:example.com"))
    assert is_exempt(admin) and not is_exempt(alice)


def test_buckets_idle_past_their_refill_time_are_forgotten() -> None:
    # refills from empty in 10 s
    bucket, clock = limiter(per_second=0.5, burst_count=5)
    bucket.check("early")
    for _ in range(5):
        bucket.check("drained")
    clock.now += 4
    bucket.check("late")
    assert len(bucket) == 3
    clock.now += 6  # "early" and "drained" idle 10 s: full again
    assert bucket.expire() == 2
    assert len(bucket) == 1
    clock.now += 3.9
    assert bucket.expire() == 0
    clock.now += 0.1
    assert bucket.expire() == 1
    assert len(bucket) == 0
    # forgetting changed nothing a client sees: a full burst, then refused
    for _ in range(5):
        bucket.check("drained")
    with pytest.raises(MatrixError):
        bucket.check("drained")


def test_an_overdrawn_bucket_is_kept_until_it_has_refilled() -> None:
    bucket, clock = limiter(per_second=1, burst_count=2)
    for _ in range(6):
        bucket.record("k")  # 4 below empty: full again after 6 s
    clock.now += 2
    assert bucket.expire() == 0
    with pytest.raises(MatrixError) as refused:
        bucket.check("k", update=False)
    assert refused.value.body()["retry_after_ms"] == 3000
    clock.now += 4
    assert bucket.expire() == 1
    assert len(bucket) == 0


def test_a_flood_of_distinct_keys_stays_bounded() -> None:
    clock = FakeClock()
    settings = RatelimitSettings(per_second=0.001, burst_count=3)
    bucket = Ratelimiter(settings, clock, max_keys=1000)
    for i in range(5000):
        bucket.check(f"10.0.{i >> 8}.{i & 255}")
        clock.now += 0.001
        assert len(bucket) <= 1000
    assert len(bucket) == 1000
    # the most recent keep their state; the least recently seen were forgotten
    bucket.check("10.0.19.135")
    bucket.check("10.0.19.135")
    with pytest.raises(MatrixError):
        bucket.check("10.0.19.135")
    for _ in range(3):
        bucket.check("10.0.0.0")


async def test_a_timer_forgets_idle_buckets_without_further_requests() -> None:
    # refills in 10 ms
    bucket = Ratelimiter(RatelimitSettings(per_second=100, burst_count=1))
    with patch("ranvier.http.ratelimit._TIMER_FLOOR_SECONDS", 0.01):
        bucket.check("k")
        bucket.check("other")
        assert len(bucket) == 2
        await asyncio.sleep(0.1)
        assert len(bucket) == 0
