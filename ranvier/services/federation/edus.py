"""EDUs other servers push in their transactions (spec: server-server-api "EDUs"): each
type has one handler, registered by the part that owns it (typing, receipts, presence,
to-device, device lists). An EDU is ephemeral and has no answer: one that is malformed,
of an unknown type or whose handler fails is logged and dropped, never failing the
transaction that carried it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

# (origin server, the EDU's content)
EduHandler = Callable[[str, Mapping[str, Any]], Awaitable[None]]


class EduDispatcher:
    def __init__(self) -> None:
        self._handlers: dict[str, EduHandler] = {}

    def register(self, edu_type: str, handler: EduHandler) -> None:
        if edu_type in self._handlers:
            raise ValueError(f"EDU type {edu_type} already has a handler")
        self._handlers[edu_type] = handler

    async def handle(self, origin: str, edus: Sequence[Any]) -> None:
        """The transaction's EDUs, in the order sent."""
        for edu in edus:
            if not isinstance(edu, Mapping):
                continue
            edu_type = edu.get("edu_type")
            content = edu.get("content")
            if not isinstance(edu_type, str) or not isinstance(content, Mapping):
                logger.info("Dropping a malformed EDU from %s", origin)
                continue
            handler = self._handlers.get(edu_type)
            if handler is None:
                logger.debug("Ignoring an EDU of type %r from %s", edu_type, origin)
                continue
            try:
                await handler(origin, content)
            except Exception:
                logger.exception("Handling a %s EDU from %s failed", edu_type, origin)
