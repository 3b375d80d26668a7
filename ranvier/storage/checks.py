"""Start-up checks on the database server, as pure functions of what the server reported.

They take plain values (a version tuple, the collation names) so tests can feed the values of
a server we do not have, and they raise `StorageStartupError` with a message an admin can act
on without reading code.
"""

from __future__ import annotations

from ranvier.storage.errors import StorageStartupError

MINIMUM_SQLITE_VERSION = (3, 27, 0)
# Synapse's upgrade notes: PostgreSQL 10 or newer.
MINIMUM_POSTGRES_VERSION = (10, 0)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def check_sqlite_version(version: tuple[int, ...]) -> None:
    """Refuse SQLite libraries older than 3.27.0 (needed for the SQL the stores write)."""
    if tuple(version) >= MINIMUM_SQLITE_VERSION:
        return
    raise StorageStartupError(
        f"SQLite {_dotted(version)} is too old: Ranvier needs SQLite "
        f"{_dotted(MINIMUM_SQLITE_VERSION)} or newer. This is the SQLite library Python is "
        "linked against; check it with "
        '`python -c "import sqlite3; print(sqlite3.sqlite_version)"`. Install a newer '
        "SQLite (or a Python built against one), or use PostgreSQL "
        "(database: name: psycopg2)."
    )


def check_postgres_version(server_version_num: int) -> None:
    """`server_version_num` is PostgreSQL's integer form, e.g. 150004 for 15.4."""
    major, minor = divmod(server_version_num, 10000)
    # before 10 the form was 90605 for 9.6.5
    version = (major, minor) if major >= 10 else (major, minor // 100)
    if version >= MINIMUM_POSTGRES_VERSION:
        return
    raise StorageStartupError(
        f"PostgreSQL {_dotted(version)} is too old: Ranvier needs PostgreSQL "
        f"{_dotted(MINIMUM_POSTGRES_VERSION)} or newer. Upgrade the database server "
        "(pg_upgrade) and start Ranvier again."
    )


def check_postgres_locale(
    database: str,
    *,
    encoding: str,
    collate: str,
    ctype: str,
    allow_unsafe_locale: bool,
) -> str | None:
    """Refuse a PostgreSQL database whose encoding is not UTF8 or whose locale is not 'C'.

    Returns a warning to log when the locale is unsafe but the admin allowed it. Text indexes
    under a non-C locale sort by rules the operating system's libc may change on upgrade,
    which silently corrupts them; with 'C' the order is byte order and never changes.
    """
    recreate = (
        f"Recreate the database with: CREATE DATABASE {database} ENCODING 'UTF8' "
        "LC_COLLATE='C' LC_CTYPE='C' TEMPLATE=template0; "
        "(dump the old one with pg_dump and restore it into the new one to keep its data)."
    )
    if encoding.upper().replace("-", "") != "UTF8":
        raise StorageStartupError(
            f"PostgreSQL database {database!r} has encoding {encoding!r}, but Ranvier needs "
            f"'UTF8'. {recreate}"
        )
    unsafe = [
        f"{name} is {value!r}"
        for name, value in (("LC_COLLATE", collate), ("LC_CTYPE", ctype))
        if value != "C"
    ]
    if not unsafe:
        return None
    problem = f"PostgreSQL database {database!r} has an unsafe locale ({', '.join(unsafe)})"
    if allow_unsafe_locale:
        return (
            f"{problem}; starting anyway because allow_unsafe_locale is true in the database "
            "section of the configuration. Indexes on text may be corrupted when the "
            f"operating system's locale data changes. {recreate}"
        )
    raise StorageStartupError(
        f"{problem}: Ranvier needs LC_COLLATE and LC_CTYPE to be 'C', because text indexes "
        "built under other locales can be silently corrupted when the operating system's "
        f"locale data changes. {recreate} To start anyway, set `allow_unsafe_locale: true` "
        "in the `database` section of the configuration file."
    )
