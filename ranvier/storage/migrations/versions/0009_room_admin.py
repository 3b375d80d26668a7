"""Create blocked_rooms and room_deletions for the room admin API.

blocked_rooms outlives the rooms it names: a room can be blocked before this server knows
it, and a purged room stays blocked. room_deletions keeps each Delete Room request's
progress and result, so its status can be read after the work ends or the server restarts.

Revision ID: 0009_room_admin
Revises: 0008_search_and_user_directory
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_room_admin"
down_revision = "0008_search_and_user_directory"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blocked_rooms",
        sa.Column("room_id", sa.Text(), primary_key=True),
        # the admin who blocked it
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("blocked_ts", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "room_deletions",
        sa.Column("delete_id", sa.Text(), primary_key=True),
        sa.Column("room_id", sa.Text(), nullable=False),
        # shutting_down, purging, complete or failed
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("requester", sa.Text(), nullable=False),
        # JSON lists of user IDs and aliases, filled in as the shutdown goes
        sa.Column("kicked_users", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("failed_to_kick_users", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("local_aliases", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("new_room_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_ts", sa.BigInteger(), nullable=False),
        sa.Column("finished_ts", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_room_deletions_room_id", "room_deletions", ["room_id"])


def downgrade() -> None:
    op.drop_index("ix_room_deletions_room_id", table_name="room_deletions")
    op.drop_table("room_deletions")
    op.drop_table("blocked_rooms")
