"""Background work repeated on an interval (retention's purge jobs, pruning redacted
events, purging forgotten rooms, media retention): started with the server, stopped with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)


class PeriodicTask:
    """Runs `work` every `period_ms`, the first time one period after `start` (as Synapse's
    looping calls); a failure is logged with `failure` and the next run comes on time."""

    def __init__(self, period_ms: int, work: Callable[[], Awaitable[Any]], failure: str) -> None:
        self._period_ms = period_ms
        self._work = work
        self._failure = failure
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._every())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self._period_ms / 1000)
            try:
                await self._work()
            except Exception:
                logger.exception(self._failure)
