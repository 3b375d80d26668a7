"""Dehydrated devices (MSC3814, unstable prefix org.matrix.msc3814.v1).

A user keeps at most one dehydrated device: a device with no access token whose keys are
published like any other's, so that room keys are sent to it while the user has no client
running. A new login fetches its encrypted state (`device_data`), rehydrates it, and reads
the to-device messages it was sent in pages with a `next_batch` token; presenting a token
deletes what came before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.errors import MatrixError
from ranvier.services.devices import DeviceService
from ranvier.services.e2e_keys import E2eKeyService, KeyUpload
from ranvier.services.to_device import ToDeviceService
from ranvier.storage.dehydrated_devices import DehydratedDevice, DehydratedDeviceStore

JsonObject = dict[str, Any]
# next_batch tokens: "d" and a position in the to-device stream
_TOKEN_PREFIX = "d"


def no_dehydrated_device() -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", "No dehydrated device available")


def parse_next_batch(token: str) -> int:
    digits = token.removeprefix(_TOKEN_PREFIX)
    if not token.startswith(_TOKEN_PREFIX) or not digits.isascii() or not digits.isdigit():
        raise MatrixError(400, "M_INVALID_PARAM", f"next_batch {token!r} is not a valid token")
    return int(digits)


@dataclass(frozen=True)
class DehydratedEvents:
    events: list[JsonObject]
    next_batch: str


class DehydratedDeviceService:
    def __init__(
        self,
        store: DehydratedDeviceStore,
        devices: DeviceService,
        keys: E2eKeyService,
        to_device: ToDeviceService,
    ) -> None:
        self._store = store
        self._devices = devices
        self._keys = keys
        self._to_device = to_device

    async def put(
        self,
        user_id: str,
        device_id: str,
        device_data: JsonObject,
        display_name: str | None,
        upload: KeyUpload,
    ) -> None:
        """Replace the user's dehydrated device with a new one and publish its keys."""
        device_keys = upload.device_keys
        if device_keys is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing 'device_keys'")
        if device_keys["user_id"] != user_id or device_keys["device_id"] != device_id:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"device_keys are for {device_keys['user_id']} {device_keys['device_id']}, "
                f"not {user_id} {device_id}",
            )
        old = await self._store.get(user_id)
        if (old is None or old.device_id != device_id) and await self._devices.get_device(
            user_id, device_id
        ) is not None:
            # never turn a logged-in device into the dehydrated one
            raise MatrixError(400, "M_INVALID_PARAM", f"Device ID {device_id} is already in use")
        if old is not None:
            # its keys and undelivered messages go with it
            await self._devices.delete_devices(user_id, [old.device_id])
        await self._devices.ensure_device(user_id, device_id, display_name)
        try:
            await self._keys.upload(user_id, device_id, upload)
        except MatrixError:
            await self._devices.delete_devices(user_id, [device_id])
            raise
        await self._store.set(user_id, device_id, device_data)

    async def get(self, user_id: str) -> DehydratedDevice:
        device = await self._store.get(user_id)
        if device is None:
            raise no_dehydrated_device()
        return device

    async def delete(self, user_id: str) -> str:
        """Delete the dehydrated device (and its keys); returns its ID."""
        device = await self.get(user_id)
        await self._devices.delete_devices(user_id, [device.device_id])
        return device.device_id

    async def events(
        self, user_id: str, device_id: str, next_batch: str | None
    ) -> DehydratedEvents:
        """The next page of to-device messages for the dehydrated device; a `next_batch`
        from an earlier page acknowledges (deletes) the messages before it."""
        device = await self._store.get(user_id)
        if device is None or device.device_id != device_id:
            raise MatrixError(
                403, "M_FORBIDDEN", "You may only fetch messages for your dehydrated device"
            )
        since = 0
        if next_batch is not None:
            since = parse_next_batch(next_batch)
            await self._to_device.ack(user_id, device_id, since)
        page = await self._to_device.get_updates(
            user_id, device_id, (), since, self._to_device.current_position()
        )
        return DehydratedEvents(list(page), f"{_TOKEN_PREFIX}{page.position}")
