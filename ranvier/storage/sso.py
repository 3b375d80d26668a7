"""Single sign-on's tables.

user_external_ids: which user a provider's subject is (Synapse's table and columns);
`auth_provider` is the provider's ID as clients see it (`oidc-<idp_id>`).

sso_sessions: the short-lived server-side half of a browser's trip through a provider,
keyed by a random ID held in a cookie; `kind` keeps one flow's session from being taken for
another's. Expired rows are swept whenever a new one is written.

device_auth_providers: the provider session (`sid`) each device was signed in through, so a
provider's back-channel logout finds the devices to end; rows go with their device.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, Index, Table, Text, delete, insert, select
from sqlalchemy.exc import IntegrityError

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

user_external_ids = Table(
    "user_external_ids",
    metadata,
    Column("auth_provider", Text, primary_key=True),
    Column("external_id", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Index("ix_user_external_ids_user_id", "user_id"),
)

sso_sessions = Table(
    "sso_sessions",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("data_json", Text, nullable=False),
    Column("expires_ts", BigInteger, nullable=False),
    Index("ix_sso_sessions_expires_ts", "expires_ts"),
)


device_auth_providers = Table(
    "device_auth_providers",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("auth_provider_id", Text, nullable=False),
    Column("auth_provider_session_id", Text, nullable=False),
    Index("ix_device_auth_providers_session", "auth_provider_id", "auth_provider_session_id"),
    Index("ix_device_auth_providers_device", "user_id", "device_id"),
)


class ExternalIdTaken(Exception):
    """The (auth_provider, external_id) pair already belongs to a user."""


class ExternalIdStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def user_for(self, auth_provider: str, external_id: str) -> str | None:
        query = select(user_external_ids.c.user_id).where(
            user_external_ids.c.auth_provider == auth_provider,
            user_external_ids.c.external_id == external_id,
        )
        async with self._db.read() as conn:
            value = (await conn.execute(query)).scalar()
        return None if value is None else str(value)

    async def of_user(self, user_id: str) -> list[tuple[str, str]]:
        """(auth_provider, external_id) pairs of `user_id`, in a stable order."""
        query = (
            select(user_external_ids.c.auth_provider, user_external_ids.c.external_id)
            .where(user_external_ids.c.user_id == user_id)
            .order_by(user_external_ids.c.auth_provider, user_external_ids.c.external_id)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [(str(row.auth_provider), str(row.external_id)) for row in rows]

    async def add(self, auth_provider: str, external_id: str, user_id: str) -> None:
        """ExternalIdTaken if the identity is already someone's (even `user_id`'s)."""
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    insert(user_external_ids).values(
                        auth_provider=auth_provider, external_id=external_id, user_id=user_id
                    )
                )
        except IntegrityError:
            raise ExternalIdTaken(auth_provider, external_id) from None

    async def replace(self, user_id: str, identities: list[tuple[str, str]]) -> None:
        """`user_id`'s identities become exactly `identities`, in one transaction;
        ExternalIdTaken (and nothing changed) if one of them is another user's."""
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    delete(user_external_ids).where(user_external_ids.c.user_id == user_id)
                )
                for auth_provider, external_id in identities:
                    await conn.execute(
                        insert(user_external_ids).values(
                            auth_provider=auth_provider,
                            external_id=external_id,
                            user_id=user_id,
                        )
                    )
        except IntegrityError:
            raise ExternalIdTaken(user_id) from None


class SsoSessionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(
        self, session_id: str, kind: str, data: dict[str, Any], expires_ts: int, now: int
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(delete(sso_sessions).where(sso_sessions.c.expires_ts <= now))
            await conn.execute(
                insert(sso_sessions).values(
                    session_id=session_id,
                    kind=kind,
                    data_json=orjson.dumps(data).decode(),
                    expires_ts=expires_ts,
                )
            )

    async def get(self, session_id: str, kind: str, now: int) -> dict[str, Any] | None:
        """The session's data while it lives."""
        query = select(sso_sessions.c.data_json).where(
            sso_sessions.c.session_id == session_id,
            sso_sessions.c.kind == kind,
            sso_sessions.c.expires_ts > now,
        )
        async with self._db.read() as conn:
            value = (await conn.execute(query)).scalar()
        if value is None:
            return None
        data: dict[str, Any] = orjson.loads(value)
        return data

    async def take(self, session_id: str, kind: str, now: int) -> dict[str, Any] | None:
        """The session's data while it lives, deleting it: a session is used once."""
        where = (
            sso_sessions.c.session_id == session_id,
            sso_sessions.c.kind == kind,
            sso_sessions.c.expires_ts > now,
        )
        async with self._db.transaction() as conn:
            value = (await conn.execute(select(sso_sessions.c.data_json).where(*where))).scalar()
            # only the request whose delete removed the row may use it: a replayed
            # callback racing the first finds nothing to delete
            deleted = (await conn.execute(delete(sso_sessions).where(*where))).rowcount
        if not deleted:
            return None
        if value is None:
            return None
        data: dict[str, Any] = orjson.loads(value)
        return data

    async def delete(self, session_id: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(delete(sso_sessions).where(sso_sessions.c.session_id == session_id))


class ProviderSessionStore:
    """Which devices a provider's session signed in."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, user_id: str, device_id: str, auth_provider_id: str, session_id: str
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(device_auth_providers).values(
                    user_id=user_id,
                    device_id=device_id,
                    auth_provider_id=auth_provider_id,
                    auth_provider_session_id=session_id,
                )
            )

    async def devices_of(self, auth_provider_id: str, session_id: str) -> list[tuple[str, str]]:
        """(user ID, device ID) of each device the session signed in."""
        query = select(device_auth_providers.c.user_id, device_auth_providers.c.device_id).where(
            device_auth_providers.c.auth_provider_id == auth_provider_id,
            device_auth_providers.c.auth_provider_session_id == session_id,
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [(str(row.user_id), str(row.device_id)) for row in rows]

    async def forget_devices(self, user_id: str, device_ids: list[str]) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(device_auth_providers).where(
                    device_auth_providers.c.user_id == user_id,
                    device_auth_providers.c.device_id.in_(device_ids),
                )
            )
