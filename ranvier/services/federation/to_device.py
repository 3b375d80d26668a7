"""Send-to-device messages across servers (spec: server-server-api "Send-to-device
messaging").

Outbound: a /sendToDevice naming other servers' users becomes one `m.direct_to_device`
EDU per server, with a `message_id` of its own, kept in the federation outbox until the
server acknowledges it (through outages and restarts). Inbound: an EDU's messages go into the
local recipients' inboxes, at most once: the inbox store refuses a (sender, type,
message_id) it has seen (as it does a client's retried transaction ID), so a transaction
retried with the same EDU delivers nothing new.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from ranvier.federation.queue import FederationSender
from ranvier.services.to_device import ToDeviceService

logger = logging.getLogger(__name__)

DIRECT_TO_DEVICE = "m.direct_to_device"

JsonDict = dict[str, Any]


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


class ToDeviceRelay:
    """Hands to-device messages for other servers' users to the outbound queue."""

    def __init__(self, sender: FederationSender) -> None:
        self._sender = sender

    async def send(
        self,
        sender: str,
        event_type: str,
        messages: Mapping[str, Mapping[str, JsonDict]],
    ) -> None:
        by_server: dict[str, dict[str, Mapping[str, JsonDict]]] = {}
        for user_id, by_device in messages.items():
            by_server.setdefault(_server_of(user_id), {})[user_id] = by_device
        for destination, grouped in by_server.items():
            # durable: a lost room key leaves the recipient unable to decrypt; the
            # message_id lets the receiver drop a copy sent again after a restart
            await self._sender.send_durable_edus(
                [destination],
                [
                    (
                        DIRECT_TO_DEVICE,
                        {
                            "sender": sender,
                            "type": event_type,
                            "message_id": secrets.token_urlsafe(16),
                            "messages": grouped,
                        },
                    )
                ],
            )


class InboundToDevice:
    """The handler of m.direct_to_device EDUs."""

    def __init__(self, to_device: ToDeviceService, server_name: str) -> None:
        self._to_device = to_device
        self._server_name = server_name

    async def on_direct_to_device(self, origin: str, content: Mapping[str, Any]) -> None:
        sender = content.get("sender")
        event_type = content.get("type")
        message_id = content.get("message_id")
        messages = content.get("messages")
        if (
            not isinstance(sender, str)
            or _server_of(sender) != origin
            or not isinstance(event_type, str)
            or not isinstance(message_id, str)
            or not isinstance(messages, dict)
        ):
            logger.info("Dropping a malformed or misattributed to-device EDU from %s", origin)
            return
        local: dict[str, Mapping[str, JsonDict]] = {}
        for user_id, by_device in messages.items():
            if (
                isinstance(user_id, str)
                and _server_of(user_id) == self._server_name
                and isinstance(by_device, dict)
            ):
                local[user_id] = {
                    device_id: message
                    for device_id, message in by_device.items()
                    if isinstance(device_id, str) and isinstance(message, dict)
                }
        if local:
            await self._to_device.deliver(sender, event_type, message_id, local)
