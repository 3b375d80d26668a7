"""The whole import: open both databases, hold Ranvier's, check, run, verify."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ranvier.clock import now_ms
from ranvier.config.models import DatabaseConfig
from ranvier.storage.database import open_database
from ranvier.storage.server_hold import hold_exclusively
from ranvier.storage.synapse_import.run import (
    DEFAULT_BATCH_SIZE,
    Echo,
    ImportSummary,
    prepare_target,
    run_import,
)
from ranvier.storage.synapse_import.source import (
    SUPPORTED_SYNAPSE,
    SynapseImportError,
    check_schema,
    open_synapse_database,
)
from ranvier.storage.synapse_import.tables import ImportContext

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SUPPORTED_SYNAPSE",
    "ImportSummary",
    "SynapseImportError",
    "import_synapse_database",
]


async def import_synapse_database(
    synapse_database: Mapping[str, Any],
    ranvier_database: DatabaseConfig,
    *,
    server_name: str,
    hash_token: Callable[[str], str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    echo: Echo,
) -> ImportSummary:
    """Import the accounts in the Synapse database its `database` section names into
    Ranvier's, refusing a Synapse schema it does not know, a Ranvier database in use by a
    server or holding users already."""
    if batch_size < 1:
        raise SynapseImportError("--batch-size must be at least 1")
    source = open_synapse_database(synapse_database)
    try:
        await check_schema(source)
        target = await open_database(ranvier_database)
        try:
            hold = await hold_exclusively(target)
            try:
                ctx = ImportContext(server_name, now_ms(), hash_token)
                resumed = await prepare_target(target, source, server_name, ctx.now_ms, echo)
                return await run_import(
                    source, target, ctx, resumed=resumed, batch_size=batch_size, echo=echo
                )
            finally:
                await hold.release()
        finally:
            await target.close()
    finally:
        await source.close()
