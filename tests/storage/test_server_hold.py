"""A running server's hold on its database, on both engines: `ranvier db downgrade` is refused
while any server holds it (seen through the database itself, so a server on another machine
sharing PostgreSQL counts), and a server cannot start while a downgrade runs."""

from __future__ import annotations

import pytest

from ranvier.config.models import DatabaseConfig
from ranvier.storage.database import open_database
from ranvier.storage.server_hold import DatabaseInUse, hold_exclusively, hold_for_server


async def test_servers_share_the_hold_and_shut_out_a_downgrade(
    database_config: DatabaseConfig,
) -> None:
    # two processes' worth of connections to one database
    first, second = await open_database(database_config), await open_database(database_config)
    try:
        server = await hold_for_server(first)
        worker = await hold_for_server(second)
        with pytest.raises(DatabaseInUse, match="A Ranvier server is using the database"):
            await hold_exclusively(second)
        await server.release()
        with pytest.raises(DatabaseInUse):
            await hold_exclusively(second)
        await worker.release()

        downgrade = await hold_exclusively(second)
        with pytest.raises(DatabaseInUse, match="is being downgraded"):
            await hold_for_server(first)
        await downgrade.release()
        await (await hold_for_server(first)).release()
    finally:
        await first.close()
        await second.close()
