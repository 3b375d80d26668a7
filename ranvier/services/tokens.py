"""Access tokens: minting, looking them up for each request (cached), and noting where a
session was last seen from.

Every authenticated request looks its token up, so lookups go through a bounded cache that
logout, device deletion and deactivation invalidate. Last-seen data goes to the
`LastSeenRecorder`, which writes it in batches, never holding up the request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace

from cachetools import LRUCache

from ranvier.clock import now_ms
from ranvier.metrics.caches import lru_cache
from ranvier.services.last_seen import LastSeenRecorder
from ranvier.storage.devices import DeviceStore
from ranvier.storage.tokens import AccessTokenInfo, TokenStore

TOKEN_CACHE_SIZE = 10_000
# Tokens are printable ASCII (ours are a prefix and URL-safe base64). Anything else, such as
# header bytes that are not UTF-8 and reach us as lone surrogates, cannot name a token.
_TOKEN_SHAPE = re.compile(r"[\x21-\x7e]+")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    # the prefix tells a human (or a secret scanner) what kind of token leaked
    return f"{prefix}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: int


class AccessTokens:
    def __init__(self, tokens: TokenStore, devices: DeviceStore) -> None:
        self._tokens = tokens
        self._token_hash_to_info: LRUCache[str, AccessTokenInfo] = lru_cache(
            "access_tokens", TOKEN_CACHE_SIZE
        )
        self.last_seen = LastSeenRecorder(devices)

    async def issue(
        self,
        user_id: str,
        device_id: str | None,
        *,
        valid_until_ms: int | None,
        refresh_token_id: int | None = None,
        puppets_user_id: str | None = None,
    ) -> IssuedToken:
        token = new_token("rat")
        token_id = await self._tokens.add_access_token(
            token_hash=hash_token(token),
            user_id=user_id,
            device_id=device_id,
            valid_until_ms=valid_until_ms,
            now_ms=now_ms(),
            refresh_token_id=refresh_token_id,
            puppets_user_id=puppets_user_id,
        )
        return IssuedToken(token, token_id)

    async def lookup(self, token: str) -> AccessTokenInfo | None:
        if not _TOKEN_SHAPE.fullmatch(token):
            return None
        token_hash = hash_token(token)
        info = self._token_hash_to_info.get(token_hash)
        if info is None:
            info = await self._tokens.get_access_token(token_hash)
            if info is None:
                return None
        if info.refresh_token_id is not None and not info.used:
            # spec: the first use of a refreshed token revokes the refresh token it replaced
            await self._tokens.mark_access_token_used(info.id)
            info = replace(info, used=True)
        self._token_hash_to_info[token_hash] = info
        return info

    def invalidate(self, token_ids: list[int]) -> None:
        wanted = set(token_ids)
        for token_hash, info in list(self._token_hash_to_info.items()):
            if info.id in wanted:
                self._token_hash_to_info.pop(token_hash, None)

    def invalidate_user(self, user_id: str) -> None:
        """After a change to the user itself (deactivation, admin flag)."""
        for token_hash, info in list(self._token_hash_to_info.items()):
            if info.user_id == user_id:
                self._token_hash_to_info.pop(token_hash, None)

    async def revoke(self, token_id: int) -> None:
        await self._tokens.delete_access_token(token_id)
        self.invalidate([token_id])

    def record_seen(self, user_id: str, device_id: str | None, ip: str, user_agent: str) -> None:
        self.last_seen.record(user_id, device_id, ip, user_agent)

    async def wait_idle(self) -> None:
        """Write pending last-seen data (shutdown)."""
        await self.last_seen.close()
