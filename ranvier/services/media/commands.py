"""What `ranvier media quarantine | unquarantine | delete` do: the media admin API from the
command line, straight on the database and the media store (the server may be running
or not), reporting progress through `echo`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ranvier.config.models import HomeserverConfig
from ranvier.services.media.files import MediaFiles
from ranvier.services.media.remote import NoFetching, remote_media_cache
from ranvier.services.media.service import Echo, MediaService
from ranvier.storage.media import MediaStore
from ranvier.storage.media_remote_cache import RemoteMediaCacheStore
from ranvier.storage.schema import prepare_database
from ranvier.storage.users import UserStore

# what quarantined_by says for media quarantined from the command line
COMMAND_LINE = "ranvier media (command line)"

T = TypeVar("T")


async def _with_media(config: HomeserverConfig, work: Callable[[MediaService], Awaitable[T]]) -> T:
    database = await prepare_database(config)
    try:
        users = UserStore(database)

        async def user_exists(user_id: str) -> bool:
            return await users.get_user(user_id) is not None

        store = MediaStore(database)
        files = MediaFiles(config.media_store_path)
        remote = remote_media_cache(
            config, RemoteMediaCacheStore(database), files, NoFetching(), store.sha256_in_use
        )
        media = MediaService(config, store, files, user_exists, remote)
        return await work(media)
    finally:
        await database.close()


def _local(config: HomeserverConfig, media_id: str) -> tuple[str, str]:
    """(server name, media ID) from an ID or an mxc:// URI."""
    if media_id.startswith("mxc://"):
        server_name, _, bare = media_id[len("mxc://") :].partition("/")
        return server_name, bare
    return config.server_name, media_id


def quarantine(
    config: HomeserverConfig,
    echo: Echo,
    *,
    media_id: str | None = None,
    room_id: str | None = None,
    user_id: str | None = None,
    by: str = COMMAND_LINE,
) -> str:
    async def work(media: MediaService) -> str:
        if media_id is not None:
            server_name, bare = _local(config, media_id)
            await media.get_record(server_name, bare)
            await media.quarantine(server_name, bare, by)
            return f"Quarantined {bare}"
        if room_id is not None:
            count = await media.quarantine_room(room_id, by, echo)
            return f"Quarantined {count} media of {room_id}"
        assert user_id is not None
        count = await media.quarantine_user(user_id, by, echo)
        return f"Quarantined {count} media of {user_id}"

    return asyncio.run(_with_media(config, work))


def unquarantine(config: HomeserverConfig, media_id: str) -> str:
    async def work(media: MediaService) -> str:
        server_name, bare = _local(config, media_id)
        await media.get_record(server_name, bare)
        await media.unquarantine(server_name, bare)
        return f"Released {bare} from quarantine"

    return asyncio.run(_with_media(config, work))


def delete(
    config: HomeserverConfig,
    echo: Echo,
    *,
    media_id: str | None = None,
    before_ts: int | None = None,
    size_gt: int = 0,
    keep_profiles: bool = True,
    user_id: str | None = None,
) -> str:
    async def work(media: MediaService) -> str:
        if media_id is not None:
            server_name, bare = _local(config, media_id)
            await media.delete(server_name, bare)
            return f"Deleted {bare}"
        if before_ts is not None:
            deleted = await media.delete_old_media(
                before_ts=before_ts, size_gt=size_gt, keep_profiles=keep_profiles, echo=echo
            )
            return f"Deleted {len(deleted)} media"
        assert user_id is not None
        _page, total = await media.list_user_media(
            user_id, offset=0, limit=1, order_by="created_ts", backwards=False
        )
        deleted = await media.delete_user_media(
            user_id,
            offset=0,
            limit=max(total, 1),
            order_by="created_ts",
            backwards=False,
            echo=echo,
        )
        return f"Deleted {len(deleted)} media of {user_id}"

    return asyncio.run(_with_media(config, work))
