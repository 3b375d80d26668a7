"""OpenID tokens (spec: client-server-api "OpenID", server-server-api "OpenID"): a user asks
for a token, hands it to a third party, and the third party asks this server's federation
API whose it is. Only the token proves anything; the asking server is not authenticated."""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.services.tokens import hash_token, new_token
from ranvier.storage.openid import OpenIdTokenStore

# as Synapse: an hour, long enough for the third party to check it once
OPENID_TOKEN_LIFETIME_MS = 3600 * 1000


@dataclass(frozen=True)
class OpenIdToken:
    access_token: str
    expires_in_ms: int


class OpenIdService:
    def __init__(self, store: OpenIdTokenStore) -> None:
        self._store = store

    async def request_token(self, user_id: str) -> OpenIdToken:
        token = new_token("rao")
        now = now_ms()
        await self._store.add_token(hash_token(token), user_id, now + OPENID_TOKEN_LIFETIME_MS, now)
        return OpenIdToken(token, OPENID_TOKEN_LIFETIME_MS)

    async def user_for_token(self, token: str) -> str:
        """Whose `token` is; 401 M_UNKNOWN_TOKEN once expired or if never issued."""
        user_id = await self._store.user_for_token(hash_token(token), now_ms())
        if user_id is None:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Access token unknown or expired")
        return user_id
