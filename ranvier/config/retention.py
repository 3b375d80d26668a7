"""Synapse's `retention` section: message retention policies (docs/retention.md).

Durations are written as Synapse reads them ("1d", "30m") or as milliseconds. A section
that is absent, empty or `enabled: false` turns the feature off: nothing is hidden or
purged, and `m.room.retention` events are stored like any other state.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ranvier.config.units import parse_duration_ms

# as Synapse: without purge_jobs, one job covering every policy runs once a day
DEFAULT_PURGE_INTERVAL_MS = parse_duration_ms("1d")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration_or_none(value: int | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("a duration is a number of milliseconds or e.g. '1d'")
    return parse_duration_ms(value)


class RetentionPolicy(_Section):
    """`default_policy`: the policy of rooms without an `m.room.retention` event, and the
    value a room's event leaves out. `min_lifetime` is recorded and checked against
    `max_lifetime`, as in Synapse, but nothing waits for it."""

    min_lifetime: int | None = Field(default=None, ge=0)
    max_lifetime: int | None = Field(default=None, gt=0)

    @field_validator("min_lifetime", "max_lifetime", mode="before")
    @classmethod
    def _duration(cls, value: int | str | None) -> int | None:
        return _duration_or_none(value)

    @model_validator(mode="after")
    def _ordered(self) -> RetentionPolicy:
        if (
            self.min_lifetime is not None
            and self.max_lifetime is not None
            and self.min_lifetime > self.max_lifetime
        ):
            raise ValueError(
                "the default policy's min_lifetime is longer than its max_lifetime; "
                "lower min_lifetime or raise max_lifetime"
            )
        return self


class PurgeJob(_Section):
    """One of `purge_jobs`: every `interval`, purge the rooms whose policy's max_lifetime
    is above `shortest_max_lifetime` and at most `longest_max_lifetime` (a bound left
    out is open)."""

    shortest_max_lifetime: int | None = Field(default=None, ge=0)
    longest_max_lifetime: int | None = Field(default=None, ge=0)
    interval: int = Field(gt=0)

    @field_validator("shortest_max_lifetime", "longest_max_lifetime", "interval", mode="before")
    @classmethod
    def _duration(cls, value: int | str | None) -> int | None:
        return _duration_or_none(value)

    @model_validator(mode="after")
    def _ordered(self) -> PurgeJob:
        if (
            self.shortest_max_lifetime is not None
            and self.longest_max_lifetime is not None
            and self.shortest_max_lifetime > self.longest_max_lifetime
        ):
            raise ValueError(
                "a purge job's shortest_max_lifetime is longer than its longest_max_lifetime; "
                "swap them or fix one"
            )
        return self

    def covers(self, max_lifetime: int) -> bool:
        above = self.shortest_max_lifetime is None or max_lifetime > self.shortest_max_lifetime
        below = self.longest_max_lifetime is None or max_lifetime <= self.longest_max_lifetime
        return above and below


class RetentionConfig(_Section):
    enabled: bool = False
    default_policy: RetentionPolicy = Field(default_factory=RetentionPolicy)
    # bounds the max_lifetime a purge (and what clients see) uses, whatever the room says
    allowed_lifetime_min: int | None = Field(default=None, ge=0)
    allowed_lifetime_max: int | None = Field(default=None, ge=0)
    purge_jobs: list[PurgeJob] = Field(
        default_factory=lambda: [PurgeJob(interval=DEFAULT_PURGE_INTERVAL_MS)]
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_section(cls, value: object) -> object:
        # `retention:` with nothing under it, as a file may have it: off
        return {} if value is None else value

    @field_validator("allowed_lifetime_min", "allowed_lifetime_max", mode="before")
    @classmethod
    def _duration(cls, value: int | str | None) -> int | None:
        return _duration_or_none(value)

    @field_validator("default_policy", mode="before")
    @classmethod
    def _empty_policy(cls, value: object) -> object:
        return {} if value is None else value

    @field_validator("purge_jobs", mode="before")
    @classmethod
    def _default_jobs(cls, value: object) -> object:
        # an empty list means the default job, as in Synapse
        return value or [{"interval": DEFAULT_PURGE_INTERVAL_MS}]

    @model_validator(mode="after")
    def _bounds_ordered(self) -> RetentionConfig:
        if (
            self.allowed_lifetime_min is not None
            and self.allowed_lifetime_max is not None
            and self.allowed_lifetime_min > self.allowed_lifetime_max
        ):
            raise ValueError(
                "allowed_lifetime_min is longer than allowed_lifetime_max; "
                "no max_lifetime could satisfy both"
            )
        return self

    def effective_max_lifetime(self, max_lifetime: int | None) -> int | None:
        """The max_lifetime (ms) a room's events expire after: the room's own, else the
        default policy's, brought within the allowed bounds; None keeps them forever."""
        if max_lifetime is None:
            max_lifetime = self.default_policy.max_lifetime
        if max_lifetime is None:
            return None
        if self.allowed_lifetime_min is not None:
            max_lifetime = max(max_lifetime, self.allowed_lifetime_min)
        if self.allowed_lifetime_max is not None:
            max_lifetime = min(max_lifetime, self.allowed_lifetime_max)
        return max_lifetime


class MediaRetentionConfig(_Section):
    """Synapse's `media_retention`: media nobody has fetched for this long is deleted,
    files and rows (None keeps it). Local media that is protected or quarantined, and
    users' and rooms' avatars, stay; quarantined remote media stays known so it stays
    refused."""

    local_media_lifetime: int | None = Field(default=None, gt=0)
    remote_media_lifetime: int | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _empty_section(cls, value: object) -> object:
        # empty, `null` or `false`: nothing is deleted
        return {} if value is None or value is False else value

    @field_validator("local_media_lifetime", "remote_media_lifetime", mode="before")
    @classmethod
    def _duration(cls, value: int | str | None) -> int | None:
        return _duration_or_none(value)

    @property
    def enabled(self) -> bool:
        return self.local_media_lifetime is not None or self.remote_media_lifetime is not None


def _redaction_period(value: object) -> object:
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("write a duration such as '7d', milliseconds, or null to keep it")
    if isinstance(value, int) and value < 0:
        raise ValueError("a duration cannot be negative")
    return parse_duration_ms(value)


# Synapse's `redaction_retention_period`: how long the original content of a redacted
# event is kept before it is pruned from the database; None (`null`) keeps it forever
RedactionRetentionPeriod = Annotated[int | None, BeforeValidator(_redaction_period)]
DEFAULT_REDACTION_RETENTION_MS = parse_duration_ms("7d")
