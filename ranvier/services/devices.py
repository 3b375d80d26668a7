"""Devices: a user's logged-in sessions. Deleting one logs it out (its tokens go with it)."""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable

from ranvier.clock import now_ms
from ranvier.services.tokens import AccessTokens
from ranvier.storage.devices import Connection, Device, DeviceStore
from ranvier.storage.tokens import TokenStore

# the shape Synapse gives generated device IDs: ten upper-case letters
_DEVICE_ID_ALPHABET = string.ascii_uppercase
_DEVICE_ID_LENGTH = 10


def generate_device_id() -> str:
    return "".join(secrets.choice(_DEVICE_ID_ALPHABET) for _ in range(_DEVICE_ID_LENGTH))


class DeviceService:
    def __init__(
        self, devices: DeviceStore, tokens: TokenStore, access_tokens: AccessTokens
    ) -> None:
        self._devices = devices
        self._tokens = tokens
        self._access_tokens = access_tokens
        # called with (user_id, device_lists position) after a device is renamed or deleted,
        # so the device list stream can wake whoever shares a room with the user
        self.on_device_list_change: list[Callable[[str, int], Awaitable[None]]] = []
        # called with (user_id, device_ids) after devices are logged out, so what belonged
        # to their sessions (pushers) goes with them
        self.on_devices_deleted: list[Callable[[str, list[str]], Awaitable[None]]] = []

    async def ensure_device(
        self, user_id: str, device_id: str | None, display_name: str | None
    ) -> str:
        """The given device (created if new) or a newly generated one; returns its ID."""
        if device_id is not None:
            created = await self._devices.ensure_device(user_id, device_id, display_name, now_ms())
            if created is not None:
                await self._device_list_changed(user_id, created)
            return device_id
        while True:
            candidate = generate_device_id()
            created = await self._devices.ensure_device(user_id, candidate, display_name, now_ms())
            if created is not None:
                await self._device_list_changed(user_id, created)
                return candidate

    async def list_devices(self, user_id: str) -> list[Device]:
        """With their latest last-seen data, including what is not written yet."""
        devices = await self._devices.get_devices(user_id)
        return self._access_tokens.last_seen.freshest(user_id, devices)

    async def get_device(self, user_id: str, device_id: str) -> Device | None:
        device = await self._devices.get_device(user_id, device_id)
        if device is None:
            return None
        return self._access_tokens.last_seen.freshest(user_id, [device])[0]

    async def connections(self, user_id: str) -> list[Connection]:
        """Where the user was seen from, newest first, including what is not written yet."""
        stored = await self._devices.get_connections(user_id)
        return self._access_tokens.last_seen.freshest_connections(user_id, stored)

    async def rename_device(self, user_id: str, device_id: str, display_name: str) -> bool:
        position = await self._devices.set_display_name(user_id, device_id, display_name)
        if position is None:
            return False
        await self._device_list_changed(user_id, position)
        return True

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        """Log the devices out; their end-to-end keys go with them."""
        deleted = await self._devices.delete_devices(user_id, device_ids)
        self._access_tokens.invalidate(deleted.access_token_ids)
        if deleted.position is not None:
            await self._device_list_changed(user_id, deleted.position)
        for callback in self.on_devices_deleted:
            await callback(user_id, device_ids)

    async def _device_list_changed(self, user_id: str, position: int) -> None:
        for callback in self.on_device_list_change:
            await callback(user_id, position)

    async def delete_all_devices(
        self, user_id: str, *, except_device_id: str | None = None
    ) -> None:
        """Log out everywhere (but on `except_device_id`), device-less tokens included."""
        device_ids = [
            device.device_id
            for device in await self._devices.get_devices(user_id)
            if device.device_id != except_device_id
        ]
        await self.delete_devices(user_id, device_ids)
        self._access_tokens.invalidate(await self._tokens.delete_tokens_without_device(user_id))
