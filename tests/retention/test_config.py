"""The `retention` section: Synapse's file loads with its meaning (durations, the default
purge job, the allowed bounds clamping a room's max_lifetime), and contradictions refuse
start-up saying what to change."""

from __future__ import annotations

from pathlib import Path

from ranvier.config import load_config
from tests.config.files import refusal, write_config

DAY = 86_400_000


def test_synapse_retention_section_loads_with_durations(generated: Path) -> None:
    section = {
        "enabled": True,
        "default_policy": {"min_lifetime": "1d", "max_lifetime": "1y"},
        "allowed_lifetime_min": "1d",
        "allowed_lifetime_max": "1y",
        "purge_jobs": [
            {"longest_max_lifetime": "3d", "interval": "12h"},
            {"shortest_max_lifetime": "3d", "longest_max_lifetime": "1w", "interval": "1d"},
            {"shortest_max_lifetime": "1w", "interval": "2d"},
        ],
    }
    retention = load_config(write_config(generated, retention=section)).retention
    assert retention.enabled
    assert retention.default_policy.min_lifetime == DAY
    assert retention.default_policy.max_lifetime == 365 * DAY
    assert [job.interval for job in retention.purge_jobs] == [DAY // 2, DAY, 2 * DAY]
    first, middle, last = retention.purge_jobs
    # a job covers max_lifetimes above its shortest and up to its longest
    assert first.covers(3 * DAY) and not first.covers(3 * DAY + 1)
    assert middle.covers(3 * DAY + 1) and middle.covers(7 * DAY) and not middle.covers(3 * DAY)
    assert last.covers(10_000 * DAY) and not last.covers(7 * DAY)


def test_without_purge_jobs_one_daily_job_covers_every_policy(generated: Path) -> None:
    for jobs in (None, []):
        section = {"enabled": True, "purge_jobs": jobs} if jobs is not None else {"enabled": True}
        retention = load_config(write_config(generated, retention=section)).retention
        assert len(retention.purge_jobs) == 1
        (job,) = retention.purge_jobs
        assert job.interval == DAY and job.covers(1) and job.covers(100 * 365 * DAY)


def test_the_allowed_bounds_clamp_max_lifetime_and_fill_in_the_default(generated: Path) -> None:
    section = {
        "enabled": True,
        "default_policy": {"max_lifetime": "10d"},
        "allowed_lifetime_min": "1d",
        "allowed_lifetime_max": "30d",
    }
    retention = load_config(write_config(generated, retention=section)).retention
    assert retention.effective_max_lifetime(1000) == DAY
    assert retention.effective_max_lifetime(5 * DAY) == 5 * DAY
    assert retention.effective_max_lifetime(365 * DAY) == 30 * DAY
    # a room whose policy names no max_lifetime gets the default's
    assert retention.effective_max_lifetime(None) == 10 * DAY
    no_default = load_config(write_config(generated, retention={"enabled": True})).retention
    assert no_default.effective_max_lifetime(None) is None


def test_an_absent_or_disabled_section_turns_retention_off(generated: Path) -> None:
    assert not load_config(generated).retention.enabled
    off = load_config(write_config(generated, retention={"enabled": False}))
    assert not off.retention.enabled
    # `retention:` with nothing under it
    assert not load_config(write_config(generated, retention=None)).retention.enabled


def test_contradictions_refuse_start_up(generated: Path) -> None:
    message = refusal(
        write_config(
            generated,
            retention={
                "enabled": True,
                "default_policy": {"min_lifetime": "2d", "max_lifetime": "1d"},
            },
        )
    )
    assert "min_lifetime is longer than its max_lifetime" in message
    message = refusal(
        write_config(
            generated,
            retention={"enabled": True, "allowed_lifetime_min": "1y", "allowed_lifetime_max": "1d"},
        )
    )
    assert "allowed_lifetime_min is longer than allowed_lifetime_max" in message
    message = refusal(
        write_config(
            generated,
            retention={
                "enabled": True,
                "purge_jobs": [
                    {"shortest_max_lifetime": "1w", "longest_max_lifetime": "1d", "interval": "1d"}
                ],
            },
        )
    )
    assert "shortest_max_lifetime is longer than its longest_max_lifetime" in message


def test_bad_values_refuse_start_up(generated: Path) -> None:
    message = refusal(write_config(generated, retention={"enabled": True, "purge_jobs": [{}]}))
    assert "interval" in message
    message = refusal(
        write_config(generated, retention={"enabled": True, "allowed_lifetime_max": "soon"})
    )
    assert "'soon' is not a duration" in message
    message = refusal(
        write_config(generated, retention={"enabled": True, "purge_jobs": [{"interval": 0}]})
    )
    assert "interval" in message
    message = refusal(write_config(generated, retention={"enabled": True, "max_lifetime": "1d"}))
    assert "max_lifetime" in message


def test_media_retention_loads_durations_and_refuses_bad_ones(generated: Path) -> None:
    section = {"local_media_lifetime": "90d", "remote_media_lifetime": "14d"}
    media = load_config(write_config(generated, media_retention=section)).media_retention
    assert (media.local_media_lifetime, media.remote_media_lifetime) == (90 * DAY, 14 * DAY)
    for off in (None, False, {}):
        assert not load_config(write_config(generated, media_retention=off)).media_retention.enabled
    message = refusal(write_config(generated, media_retention={"local_media_lifetime": "often"}))
    assert "media_retention.local_media_lifetime" in message
    message = refusal(write_config(generated, media_retention={"remote_media_lifetime": 0}))
    assert "media_retention.remote_media_lifetime" in message
    message = refusal(write_config(generated, media_retention={"lifetime": "1d"}))
    assert "lifetime" in message


def test_forget_rooms_on_leave_is_a_switch(generated: Path) -> None:
    assert not load_config(generated).forget_rooms_on_leave
    assert load_config(write_config(generated, forget_rooms_on_leave=True)).forget_rooms_on_leave


def test_redaction_retention_period_defaults_to_a_week_and_null_keeps(generated: Path) -> None:
    assert load_config(generated).redaction_retention_period == 7 * DAY
    assert (
        load_config(
            write_config(generated, redaction_retention_period="28d")
        ).redaction_retention_period
        == 28 * DAY
    )
    assert (
        load_config(
            write_config(generated, redaction_retention_period=None)
        ).redaction_retention_period
        is None
    )
    message = refusal(write_config(generated, redaction_retention_period="a while"))
    assert "redaction_retention_period" in message
    message = refusal(write_config(generated, redaction_retention_period=-5))
    assert "redaction_retention_period" in message


def test_forgotten_room_retention_period_is_off_unless_set(generated: Path) -> None:
    assert load_config(generated).forgotten_room_retention_period is None
    config = load_config(write_config(generated, forgotten_room_retention_period="28d"))
    assert config.forgotten_room_retention_period == 28 * DAY
    message = refusal(write_config(generated, forgotten_room_retention_period="later"))
    assert "forgotten_room_retention_period" in message
