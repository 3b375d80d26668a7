"""What `ranvier db status | upgrade | downgrade` do, as plain functions.

Each reports progress through `echo` as it goes and returns its final summary (or, for
status, the whole report) for the caller to print. The `*_async` forms are for callers that
already run an event loop; the plain ones start their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from ranvier.config.models import HomeserverConfig
from ranvier.storage.background_updates import pending_background_updates
from ranvier.storage.database import Database, open_database
from ranvier.storage.schema import (
    BASE,
    downgrade,
    known_revision_summaries,
    known_revisions,
    resolve_revision,
    schema_status,
    upgrade,
)
from ranvier.storage.server_hold import hold_exclusively

Echo = Callable[[str], None]
# shown what a downgrade drops; True to go ahead
Confirm = Callable[[list[str]], bool]


def _quiet(_line: str) -> None:
    pass


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.1f} s"


async def db_status_async(config: HomeserverConfig) -> str:
    db = await open_database(config.database)
    try:
        status = await schema_status(db)
        summaries = known_revision_summaries()
        lines = [
            f"Database: {db.description}",
            f"Schema revision: {status.current or 'none (empty database)'}",
            f"Newest revision this Ranvier knows: {status.head}",
        ]
        lines += [f"Warning: {warning}" for warning in db.warnings]
        if status.ahead_of_code:
            lines.append(
                f"The database is NEWER than this Ranvier: {status.current} is unknown here. "
                f"Downgrade it to {status.head} with the newer Ranvier, or upgrade Ranvier."
            )
        elif status.pending:
            lines.append(f"Pending migrations ({len(status.pending)}):")
            lines += [f"  {revision}: {summaries[revision]}" for revision in status.pending]
        else:
            lines.append("Schema is up to date.")

        if status.current is None:
            # no background_updates table before the first migration
            return "\n".join(lines)
        updates = await pending_background_updates(db)
        if not updates:
            lines.append("Background updates: none pending.")
        else:
            lines.append(f"Background updates pending ({len(updates)}, in run order):")
            for update in updates:
                after = f", after {update.depends_on}" if update.depends_on else ""
                lines.append(
                    f"  {update.name} (ordering {update.ordering}{after}): "
                    f"{update.total_item_count} items done in "
                    f"{_seconds(update.total_duration_ms)}; "
                    f"progress {orjson.dumps(update.progress).decode()}"
                )
        return "\n".join(lines)
    finally:
        await db.close()


async def db_upgrade_async(
    config: HomeserverConfig, target: str = "head", echo: Echo = _quiet
) -> str:
    # an unknown revision fails before connecting
    destination = resolve_revision(target, allow_base=False)
    db = await open_database(config.database)
    try:
        echo(f"Database: {db.description}")
        applied = await upgrade(db, destination, echo)
        return f"Done: the schema is at {destination} ({applied} applied)."
    finally:
        await db.close()


async def db_downgrade_async(
    config: HomeserverConfig,
    revision: str,
    echo: Echo = _quiet,
    confirm: Confirm | None = None,
) -> str:
    """Revert to `revision`. Refused while a server holds the database; holds it while
    reverting so no server starts midway. `confirm` is shown what will be dropped (one line
    per migration) and says whether to go ahead; None goes ahead."""
    destination = resolve_revision(revision, allow_base=True)
    db = await open_database(config.database)
    try:
        echo(f"Database: {db.description}")
        hold = await hold_exclusively(db)
        try:
            losing = await _reverted_by(db, destination)
            if losing and confirm is not None and not confirm(losing):
                return "Nothing was changed."
            reverted = await downgrade(db, destination, echo)
        finally:
            await hold.release()
        if destination == BASE:
            return f"Done ({reverted} reverted): Ranvier's tables are gone."
        return (
            f"Done: the schema is at {destination} ({reverted} reverted). Now start the "
            f"Ranvier version whose newest revision is {destination}; starting this one "
            "would upgrade the database again."
        )
    finally:
        await db.close()


async def _reverted_by(db: Database, destination: str) -> list[str]:
    """What reverting to `destination` drops: "revision: summary" per migration, newest
    first (empty when there is nothing to revert, or when `downgrade` will refuse)."""
    status = await schema_status(db)
    if status.ahead_of_code or status.current is None:
        return []
    revisions = known_revisions()
    summaries = known_revision_summaries()
    start = 0 if destination == BASE else revisions.index(destination) + 1
    if status.current not in revisions:
        return []
    reverted = revisions[start : revisions.index(status.current) + 1]
    return [f"{revision}: {summaries[revision]}" for revision in reversed(reverted)]


def db_status(config: HomeserverConfig, echo: Echo = _quiet) -> str:
    """`ranvier db status`: engine, schema revision against this code, pending migrations and
    pending background updates with their progress. `echo` is unused (nothing is slow here);
    it is taken for symmetry with the other commands."""
    return asyncio.run(db_status_async(config))


def db_upgrade(config: HomeserverConfig, target: str = "head", echo: Echo = print) -> str:
    """`ranvier db upgrade [REV]`."""
    return asyncio.run(db_upgrade_async(config, target, echo))


def db_downgrade(
    config: HomeserverConfig,
    revision: str,
    echo: Echo = print,
    confirm: Confirm | None = None,
) -> str:
    """`ranvier db downgrade REV`."""
    return asyncio.run(db_downgrade_async(config, revision, echo, confirm))
