"""Access tokens: minting, looking them up for each request (cached), and noting where a
session was last seen from.

Every authenticated request looks its token up, so lookups go through a bounded cache that
logout, device deletion and deactivation invalidate. Last-seen data is written at most once
a minute per token and address, in the background, never holding up the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass, replace

from cachetools import LRUCache

from ranvier.clock import now_ms
from ranvier.storage.devices import DeviceStore
from ranvier.storage.tokens import AccessTokenInfo, TokenStore

logger = logging.getLogger(__name__)

TOKEN_CACHE_SIZE = 10_000
LAST_SEEN_INTERVAL_MS = 60_000


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
        self._devices = devices
        self._token_hash_to_info: LRUCache[str, AccessTokenInfo] = LRUCache(TOKEN_CACHE_SIZE)
        self._seen_key_to_ms: LRUCache[tuple[int, str, str], int] = LRUCache(TOKEN_CACHE_SIZE)
        self._background: set[asyncio.Task[None]] = set()

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

    def record_seen(self, info: AccessTokenInfo, ip: str, user_agent: str) -> None:
        now = now_ms()
        key = (info.id, ip, user_agent)
        last = self._seen_key_to_ms.get(key)
        if last is not None and now - last < LAST_SEEN_INTERVAL_MS:
            return
        self._seen_key_to_ms[key] = now
        task = asyncio.create_task(self._write_seen(info, ip, user_agent, now))
        # hold a reference until done, or the task may be collected mid-way
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_seen(self, info: AccessTokenInfo, ip: str, user_agent: str, now: int) -> None:
        try:
            await self._devices.record_last_seen(info.user_id, info.device_id, ip, user_agent, now)
        except Exception:
            # last-seen data is informational; a failure must not surface to anyone
            logger.warning("Could not record last-seen data for %s", info.user_id, exc_info=True)

    async def wait_idle(self) -> None:
        """Let pending last-seen writes finish (shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
