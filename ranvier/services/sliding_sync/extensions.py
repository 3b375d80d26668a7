"""Sliding sync's extensions (MSC4186; MSC3884 e2ee, MSC3885 to_device, MSC3959 receipts,
MSC3960 account_data, MSC3961 typing): the streams other than the rooms' events, read
from the same sources as /sync (services/sync/sources.py) and put in their own shape.

The endpoint (S1's connection code) decides the rooms in scope and the token positions;
`build` answers the request's `extensions` object for them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.services.sync.account_data import AccountDataReader
from ranvier.services.sync.sources import (
    DeviceListsSource,
    ReceiptsSource,
    ToDeviceSource,
    TypingSource,
)
from ranvier.storage.database import Database
from ranvier.streams.sync_token import SyncToken

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class ExtensionContext:
    user_id: str
    device_id: str | None
    # stream positions of the request's `pos`; None on an initial request
    from_token: SyncToken | None
    # the positions this response reads up to
    to_token: SyncToken
    # list name -> the room IDs in its ranges
    list_rooms: Mapping[str, Sequence[str]]
    subscribed_rooms: Sequence[str]
    joined_rooms: Collection[str]


class SlidingSyncExtensions:
    def __init__(
        self,
        db: Database,
        to_device: ToDeviceSource | None,
        device_lists: DeviceListsSource | None,
        account_data: AccountDataReader | None,
        receipts: ReceiptsSource | None,
        typing: TypingSource | None,
    ) -> None:
        self._db = db
        self._to_device = to_device
        self._device_lists = device_lists
        self._account_data = account_data
        self._receipts = receipts
        self._typing = typing

    async def build(self, ctx: ExtensionContext, requested: JsonDict) -> JsonDict:
        """The response's `extensions` object for the request's `extensions`."""
        return {}
