"""Create the full text index of room events (event_search) and the user directory's tables,
and, on a database that already has rooms, queue the background updates that index them.

event_search is an FTS5 virtual table on SQLite (its rowid is the event's stream_ordering)
and a table with a GIN-indexed tsvector on PostgreSQL. The user directory keeps only what
the rooms' current state does not answer quickly: which rooms make their members visible to
everyone (public join rule or world_readable history), and the profiles of remote users as
their member events show them. Local users' profiles are read from `profiles` itself.

Revision ID: 0008_search_and_user_directory
Revises: 0007_event_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_search_and_user_directory"
down_revision = "0007_event_reports"
branch_labels = None
depends_on = None

# the names the code registers its handlers under (ranvier/services/search.py and
# ranvier/services/user_directory.py)
POPULATE_EVENT_SEARCH = "populate_event_search"
POPULATE_USER_DIRECTORY = "populate_user_directory"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # porter: "martians" finds "martian"; remove_diacritics 2 needs SQLite 3.27, our floor
        op.execute(
            "CREATE VIRTUAL TABLE event_search USING fts5("
            "value, event_id UNINDEXED, room_id UNINDEXED, sender UNINDEXED, key UNINDEXED, "
            "tokenize = 'porter unicode61 remove_diacritics 2')"
        )
    else:
        op.create_table(
            "event_search",
            sa.Column("event_id", sa.Text(), primary_key=True),
            sa.Column("room_id", sa.Text(), nullable=False),
            sa.Column("sender", sa.Text(), nullable=False),
            # content.body, content.name or content.topic
            sa.Column("key", sa.Text(), nullable=False),
            sa.Column("stream_ordering", sa.BigInteger(), nullable=False),
            sa.Column("vector", postgresql.TSVECTOR(), nullable=False),
        )
        op.create_index(
            "ix_event_search_vector", "event_search", ["vector"], postgresql_using="gin"
        )
        op.create_index(
            "ix_event_search_room_stream", "event_search", ["room_id", "stream_ordering"]
        )
    op.create_table(
        "user_directory_public_rooms",
        sa.Column("room_id", sa.Text(), primary_key=True),
    )
    op.create_table(
        "user_directory_remote_users",
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("avatar_url", sa.Text(), nullable=True),
    )
    # only a database with rooms has anything to index; a new one starts with nothing queued
    bind = op.get_bind()
    queued = []
    if bind.execute(sa.text("SELECT 1 FROM events LIMIT 1")).first() is not None:
        queued.append({"update_name": POPULATE_EVENT_SEARCH, "progress_json": "{}", "ordering": 8})
    if bind.execute(sa.text("SELECT 1 FROM rooms LIMIT 1")).first() is not None:
        queued.append(
            {"update_name": POPULATE_USER_DIRECTORY, "progress_json": "{}", "ordering": 8}
        )
    if queued:
        updates = sa.table(
            "background_updates",
            sa.column("update_name", sa.String()),
            sa.column("progress_json", sa.Text()),
            sa.column("ordering", sa.Integer()),
        )
        op.bulk_insert(updates, queued)


def downgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM background_updates WHERE update_name IN (:search, :directory)"
        ).bindparams(search=POPULATE_EVENT_SEARCH, directory=POPULATE_USER_DIRECTORY)
    )
    op.drop_table("user_directory_remote_users")
    op.drop_table("user_directory_public_rooms")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE event_search")
    else:
        op.drop_table("event_search")
