"""Create event_reports and room_reports: what users reported to the server admins.

An event report keeps the reporter's body (`reason` and the optional `score`) as JSON in
`content`, as the admin API shows it; the event itself is read from `events` when an admin
looks at a report, so a report never holds a second copy of the event.

Revision ID: 0007_event_reports
Revises: 0006_rooms
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_event_reports"
down_revision = "0006_rooms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        # ms since the epoch
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        # the reporter
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        # the request body as JSON: {"reason": ..., "score": ...}
        sa.Column("content", sa.Text(), nullable=False),
    )
    op.create_index("ix_event_reports_room", "event_reports", ["room_id"])
    op.create_index("ix_event_reports_user", "event_reports", ["user_id"])
    op.create_table(
        "room_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("room_reports")
    op.drop_index("ix_event_reports_user", table_name="event_reports")
    op.drop_index("ix_event_reports_room", table_name="event_reports")
    op.drop_table("event_reports")
