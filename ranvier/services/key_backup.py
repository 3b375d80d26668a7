"""Server-side key backups: spec client-server-api "Server-side key backups"
(key_backup.yaml).

Each user has numbered backup versions; keys are written only to the current (highest live)
one. Versions are numbers here and opaque strings to clients: a string that is not a number
this server handed out names no version (M_NOT_FOUND).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.errors import MatrixError
from ranvier.storage.key_backup import (
    BackupVersion,
    KeyBackupStore,
    KeysChanged,
    NotCurrent,
    RoomKey,
    UploadRefused,
)

# opaque to the server: Synapse keeps any JSON value (SyTest sends a string)
JsonValue = Any
# the largest version a BigInteger column holds
_MAX_VERSION = 2**63 - 1


def unknown_version() -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", "Unknown backup version")


def parse_version(version: str) -> int | None:
    """The version number a client's string names: only the exact decimal form this server
    hands out ("7", never "07" or "+7")."""
    if not version.isascii() or not version.isdigit() or str(int(version)) != version:
        return None
    number = int(version)
    return number if number <= _MAX_VERSION else None


def replaces(new: RoomKey, existing: RoomKey) -> bool:
    """Whether an uploaded key is better than the backed-up one (spec: "Server-side key
    backups"): a verified key wins, then the lower first_message_index, then the lower
    forwarded_count; on a tie the existing key stays."""

    def rank(key: RoomKey) -> tuple[bool, int, int]:
        return (not key.is_verified, key.first_message_index, key.forwarded_count)

    return rank(new) < rank(existing)


@dataclass(frozen=True)
class VersionInfo:
    version: str
    algorithm: str
    auth_data: JsonValue
    etag: str
    count: int

    @classmethod
    def of(cls, stored: BackupVersion) -> VersionInfo:
        return cls(
            version=str(stored.version),
            algorithm=stored.algorithm,
            auth_data=stored.auth_data,
            etag=str(stored.etag),
            count=stored.count,
        )


@dataclass(frozen=True)
class KeyCounts:
    """What a change of keys answers: the version's etag and how many keys it holds."""

    etag: str
    count: int

    @classmethod
    def of(cls, changed: KeysChanged) -> KeyCounts:
        return cls(etag=str(changed.etag), count=changed.count)


class KeyBackupService:
    def __init__(self, store: KeyBackupStore) -> None:
        self._store = store

    async def create_version(self, user_id: str, algorithm: str, auth_data: JsonValue) -> str:
        return str(await self._store.create_version(user_id, algorithm, auth_data))

    async def current_version(self, user_id: str) -> VersionInfo:
        stored = await self._store.get_version(user_id, None)
        if stored is None:
            raise MatrixError(404, "M_NOT_FOUND", "No current backup version")
        return VersionInfo.of(stored)

    async def get_version(self, user_id: str, version: str) -> VersionInfo:
        return VersionInfo.of(await self._live(user_id, version))

    async def update_version(
        self,
        user_id: str,
        version: str,
        algorithm: str,
        auth_data: JsonValue,
        body_version: str | None,
    ) -> None:
        """Replace the version's auth_data; only auth_data may change (spec)."""
        if body_version is not None and body_version != version:
            raise MatrixError(
                400, "M_INVALID_PARAM", "The version in the body does not match the path"
            )
        stored = await self._live(user_id, version)
        if stored.algorithm != algorithm:
            raise MatrixError(400, "M_INVALID_PARAM", "Algorithm does not match")
        if not await self._store.set_auth_data(user_id, stored.version, auth_data):
            raise unknown_version()  # deleted meanwhile

    async def delete_version(self, user_id: str, version: str) -> None:
        """Delete the version and its keys; a version deleted before is no error (spec)."""
        number = parse_version(version)
        if number is None or not await self._store.delete_version(user_id, number):
            raise unknown_version()

    async def upload_keys(self, user_id: str, version: str, keys: list[RoomKey]) -> KeyCounts:
        number = parse_version(version)
        if number is None:
            raise unknown_version()
        outcome = await self._store.upload_keys(user_id, number, keys, replaces)
        if isinstance(outcome, NotCurrent):
            raise MatrixError(
                403,
                "M_WRONG_ROOM_KEYS_VERSION",
                "Wrong backup version: keys can only be added to the current one",
                current_version=str(outcome.current_version),
            )
        if isinstance(outcome, UploadRefused):
            raise unknown_version()
        return KeyCounts.of(outcome)

    async def get_keys(
        self, user_id: str, version: str, room_id: str | None = None, session_id: str | None = None
    ) -> list[RoomKey]:
        number = parse_version(version)
        keys = (
            None
            if number is None
            else await self._store.get_keys(user_id, number, room_id, session_id)
        )
        if keys is None:
            raise unknown_version()
        return keys

    async def delete_keys(
        self, user_id: str, version: str, room_id: str | None = None, session_id: str | None = None
    ) -> KeyCounts:
        """Any live version's keys may be deleted, not only the current one's (as Synapse)."""
        number = parse_version(version)
        changed = (
            None
            if number is None
            else await self._store.delete_keys(user_id, number, room_id, session_id)
        )
        if changed is None:
            raise unknown_version()
        return KeyCounts.of(changed)

    async def delete_user_backups(self, user_id: str) -> None:
        """AccountService.on_deactivated: a deactivated user's backups go (as Synapse)."""
        await self._store.delete_user(user_id)

    async def _live(self, user_id: str, version: str) -> BackupVersion:
        number = parse_version(version)
        stored = None if number is None else await self._store.get_version(user_id, number)
        if stored is None:
            raise unknown_version()
        return stored
