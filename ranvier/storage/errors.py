"""Errors raised by the storage layer that an admin, not a developer, has to act on."""

from __future__ import annotations


class StorageError(Exception):
    """Base class for storage errors whose message is meant for the person running Ranvier."""


class StorageStartupError(StorageError):
    """The database is unusable as configured; the message says what to change."""


class UnknownRevisionError(StorageError):
    """A schema revision was named that this version of Ranvier does not know."""


class DatabaseUnavailable(StorageError):
    """No database connection could be had in time: all of them stayed busy, or the database
    did not answer. The request was not served; the same request may succeed shortly."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
