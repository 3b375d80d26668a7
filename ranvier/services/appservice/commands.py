"""What `ranvier appservices` prints: each registered service with its namespaces, and from
the database how far behind it is (transactions it has not acknowledged, and where its
events stream stands against the newest event). Read-only; the server may be running."""

from __future__ import annotations

import asyncio
import time

from ranvier.config.models import HomeserverConfig
from ranvier.services.appservice.overview import describe
from ranvier.storage.appservices import AppServiceBacklog, get_backlogs
from ranvier.storage.database import open_database
from ranvier.storage.schema import schema_status


def list_appservices(config: HomeserverConfig) -> str:
    return asyncio.run(_list_appservices(config))


async def _list_appservices(config: HomeserverConfig) -> str:
    services = config.appservices
    count = len(services)
    lines = [
        f"{count} application service{'' if count == 1 else 's'} registered "
        "(app_service_config_files)"
    ]
    database = await open_database(config.database)
    try:
        status = await schema_status(database)
        if status.pending or status.ahead_of_code:
            lines.append(
                "The database schema is not this Ranvier's (see `ranvier db status`): "
                "backlogs are not shown."
            )
            backlogs, newest = None, 0
        else:
            backlogs, newest = await get_backlogs(database)
    finally:
        await database.close()
    now_ms = int(time.time() * 1000)
    for service in services:
        lines.append("")
        lines.append(service.id)
        lines += [f"  {label}: {value}" for label, value in describe(service).items()]
        if backlogs is not None:
            lines += _backlog_lines(backlogs.get(service.id), newest, now_ms)
    if backlogs is not None:
        for appservice_id in sorted(set(backlogs) - {service.id for service in services}):
            lines.append("")
            lines.append(f"{appservice_id} (no longer registered)")
            lines += _backlog_lines(backlogs[appservice_id], newest, now_ms)
    return "\n".join(lines)


def _backlog_lines(backlog: AppServiceBacklog | None, newest: int, now_ms: int) -> list[str]:
    if backlog is None or backlog.events_position is None:
        events = "nothing sent yet"
    elif backlog.events_position >= newest:
        events = f"up to date (position {newest})"
    else:
        events = (
            f"{newest - backlog.events_position} behind "
            f"(at position {backlog.events_position} of {newest})"
        )
    pending = 0 if backlog is None else backlog.unacknowledged_txns
    unacknowledged = str(pending)
    if backlog is not None and backlog.oldest_unacknowledged_ts is not None:
        age = _age(now_ms - backlog.oldest_unacknowledged_ts)
        unacknowledged += f" (oldest {age} old)"
    return [f"  events stream: {events}", f"  unacknowledged transactions: {unacknowledged}"]


def _age(ms: int) -> str:
    seconds = max(ms, 0) // 1000
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
