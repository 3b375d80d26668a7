"""Which provider identities are which user, for the admin API: Synapse's `external_ids` of
GET/PUT /_synapse/admin/v2/users/{userId}, and looking a user up by an identity."""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.errors import MatrixError
from ranvier.storage.sso import ExternalIdStore, ExternalIdTaken


@dataclass(frozen=True)
class ExternalId:
    auth_provider: str
    external_id: str

    def json(self) -> dict[str, str]:
        return {"auth_provider": self.auth_provider, "external_id": self.external_id}


class ExternalIds:
    def __init__(self, store: ExternalIdStore) -> None:
        self._store = store

    async def of_user(self, user_id: str) -> list[dict[str, str]]:
        return [ExternalId(p, e).json() for p, e in await self._store.of_user(user_id)]

    async def user_for(self, auth_provider: str, external_id: str) -> str:
        """GET /_synapse/admin/v1/auth_providers/{provider}/users/{externalId}"""
        user_id = await self._store.user_for(auth_provider, external_id)
        if user_id is None:
            raise MatrixError(404, "M_NOT_FOUND", "User not found")
        return user_id

    async def check_free(self, user_id: str, identities: list[ExternalId]) -> None:
        """409 unless each identity is `user_id`'s or nobody's: checked before a PUT writes
        anything, so a refusal changes nothing."""
        for identity in identities:
            owner = await self._store.user_for(identity.auth_provider, identity.external_id)
            if owner is not None and owner != user_id:
                # Synapse's status and words
                raise MatrixError(409, "M_UNKNOWN", "External id is already in use.")

    async def replace(self, user_id: str, identities: list[ExternalId]) -> None:
        """`user_id`'s identities become exactly `identities` (Synapse: the list replaces)."""
        try:
            await self._store.replace(
                user_id, sorted({(i.auth_provider, i.external_id) for i in identities})
            )
        except ExternalIdTaken:
            # taken between the check and the write
            raise MatrixError(409, "M_UNKNOWN", "External id is already in use.") from None
