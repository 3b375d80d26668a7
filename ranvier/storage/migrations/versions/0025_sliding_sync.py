"""Sliding sync (MSC4186): each room's bump stamp, the stream position of its newest
event of a type that moves it up a client's room list, filled here from the events
already stored; and the positions handed to sliding sync connections, with what each
connection had been sent of each room.

Revision ID: 0025_sliding_sync
Revises: 0024_appservices
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025_sliding_sync"
down_revision = "0024_appservices"
branch_labels = None
depends_on = None

# as services/sliding_sync/rooms.BUMP_EVENT_TYPES when this revision was written
_BUMP_EVENT_TYPES = (
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "m.beacon_info",
)


def upgrade() -> None:
    op.create_table(
        "sliding_sync_bump_stamps",
        sa.Column("room_id", sa.Text(), primary_key=True),
        sa.Column("stream_ordering", sa.BigInteger(), nullable=False),
    )
    types = ", ".join(f"'{kind}'" for kind in _BUMP_EVENT_TYPES)
    # one statement over the events table: the rooms that exist already get their stamp
    op.execute(
        "INSERT INTO sliding_sync_bump_stamps (room_id, stream_ordering) "
        "SELECT room_id, MAX(stream_ordering) FROM events "
        f"WHERE type IN ({types}) AND stream_ordering > 0 AND NOT outlier "
        "AND rejected_reason IS NULL AND NOT soft_failed GROUP BY room_id"
    )
    op.create_table(
        "sliding_sync_positions",
        sa.Column(
            "pos_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("conn_id", sa.Text(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("rooms_json", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        # IDs never reused (PostgreSQL's sequences never do)
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_sliding_sync_positions_connection",
        "sliding_sync_positions",
        ["user_id", "device_id", "conn_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_sliding_sync_positions_connection", table_name="sliding_sync_positions")
    op.drop_table("sliding_sync_positions")
    op.drop_table("sliding_sync_bump_stamps")
