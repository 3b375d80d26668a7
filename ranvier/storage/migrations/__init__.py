"""Alembic migrations of Ranvier's schema, run programmatically by `ranvier.storage.schema`.

A new revision goes in `versions/` as `NNNN_what_it_does.py` with `revision = "NNNN_what_it_does"`
and `down_revision` set to the previous one. Every revision has a working `downgrade()`, and
uses `op.batch_alter_table` for changes to existing tables so that SQLite can run them.
Long rewrites of existing rows do not belong in a migration: insert a row into
`background_updates` instead and register a handler for it.
"""
