"""Per-user overrides of the message rate limit (Synapse's admin API "Override ratelimiting
for users"): a bot or bridge may send faster than `rc_message` allows, or without limit.

The overrides are few; they are read once at start-up into `user_id_to_message_limit`,
which the rate limiters consult on every send (http/ratelimit.py), and kept in step here.
"""

from __future__ import annotations

from ranvier.errors import MatrixError
from ranvier.storage.ratelimit_overrides import MessageLimit, RatelimitOverrideStore
from ranvier.storage.users import UserStore


class RatelimitOverrides:
    def __init__(self, server_name: str, users: UserStore, store: RatelimitOverrideStore) -> None:
        self._server_name = server_name
        self._users = users
        self._store = store
        self.user_id_to_message_limit: dict[str, MessageLimit] = {}

    async def load(self) -> None:
        self.user_id_to_message_limit.clear()
        self.user_id_to_message_limit.update(await self._store.get_all())

    async def _existing_local_user(self, user_id: str) -> None:
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not colon:
            raise MatrixError(400, "M_INVALID_PARAM", f"{user_id!r} is not a valid user ID")
        if server != self._server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Can only look up local users")
        if await self._users.get_user(user_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "User not found")

    async def get(self, user_id: str) -> MessageLimit | None:
        await self._existing_local_user(user_id)
        return self.user_id_to_message_limit.get(user_id)

    async def set(self, user_id: str, limit: MessageLimit) -> None:
        await self._existing_local_user(user_id)
        await self._store.set(user_id, limit)
        self.user_id_to_message_limit[user_id] = limit

    async def delete(self, user_id: str) -> None:
        await self._existing_local_user(user_id)
        await self._store.delete(user_id)
        self.user_id_to_message_limit.pop(user_id, None)
