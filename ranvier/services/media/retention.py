"""`media_retention`: deleting media nobody has fetched for a while (Synapse's option).

As in Synapse, local media is deleted the way the "delete old media" admin API does it,
keeping protected and quarantined media and users' and rooms' avatars, and other servers'
media the way `purge_media_cache` does. Synapse checks once an hour; a lifetime shorter
than four hours is checked four times per lifetime instead, so that nothing outlives its
lifetime by more than a quarter of it.
"""

from __future__ import annotations

import logging

from ranvier.clock import now_ms
from ranvier.config.retention import MediaRetentionConfig
from ranvier.services.media.service import MediaService
from ranvier.services.periodic import PeriodicTask

logger = logging.getLogger(__name__)

CHECK_PERIOD_MS = 60 * 60 * 1000
SHORTEST_CHECK_PERIOD_MS = 1000


def check_period_ms(config: MediaRetentionConfig) -> int:
    lifetimes = [
        lifetime
        for lifetime in (config.local_media_lifetime, config.remote_media_lifetime)
        if lifetime is not None
    ]
    return max(SHORTEST_CHECK_PERIOD_MS, min([CHECK_PERIOD_MS, *(t // 4 for t in lifetimes)]))


class MediaRetention:
    def __init__(self, config: MediaRetentionConfig, media: MediaService) -> None:
        self._config = config
        self._media = media
        self._task = (
            PeriodicTask(
                check_period_ms(config),
                self.run,
                "Applying media_retention failed; trying again later",
            )
            if config.enabled
            else None
        )

    def start(self) -> None:
        if self._task is not None:
            self._task.start()

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()

    async def run(self) -> tuple[int, int]:
        """Delete what has outlived its lifetime; (local, remote) media deleted."""
        local = remote = 0
        now = now_ms()
        if self._config.local_media_lifetime is not None:
            deleted = await self._media.delete_old_media(
                before_ts=now - self._config.local_media_lifetime, keep_profiles=True
            )
            local = len(deleted)
        if self._config.remote_media_lifetime is not None:
            remote = await self._media.purge_media_cache(now - self._config.remote_media_lifetime)
        if local or remote:
            logger.info("media_retention deleted %d local and %d remote media", local, remote)
        return local, remote
