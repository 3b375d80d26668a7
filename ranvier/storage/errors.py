"""Errors raised by the storage layer that an admin, not a developer, has to act on."""

from __future__ import annotations

from ranvier.errors import TemporarilyUnavailable


class StorageError(Exception):
    """Base class for storage errors whose message is meant for the person running Ranvier."""


class StorageStartupError(StorageError):
    """The database is unusable as configured; the message says what to change."""


class UnknownRevisionError(StorageError):
    """A schema revision was named that this version of Ranvier does not know."""


class DatabaseUnavailable(StorageError, TemporarilyUnavailable):
    """No database connection could be had in time: all of them stayed busy, or the database
    did not answer. The request was not served; the same request may succeed shortly."""
