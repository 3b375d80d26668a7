"""The only code that talks to the database.

- `database`: `open_database(DatabaseConfig) -> Database`, the engine (SQLite or PostgreSQL)
  behind `Database.transaction()` / `Database.read()`, with the start-up checks of `checks`.
- `schema`: Alembic migrations (`migrations/`) run in code: `schema_status`, `upgrade`,
  `downgrade`, and `prepare_database`, which server start-up calls.
- `background_updates`: resumable batched rewrites queued by migrations.
- `commands`: `ranvier db status | upgrade | downgrade`.
- `testing`: throw-away databases for tests.
"""
