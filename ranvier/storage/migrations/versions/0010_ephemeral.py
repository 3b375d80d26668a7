"""Create receipts, device_inbox, device_inbox_txns and presence for the ephemeral streams.

receipts keeps one row per user, receipt type and thread in a room (the latest), with its
position in the receipts stream. device_inbox holds to-device messages per recipient device
until the device acknowledges them; device_inbox_txns makes sendToDevice idempotent per
sending device, event type and transaction ID. presence keeps each user's last presence so
that it survives restarts; typing is never stored.

Revision ID: 0010_ephemeral
Revises: 0009_room_admin
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_ephemeral"
down_revision = "0009_room_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("receipt_type", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        # "" for an unthreaded receipt: primary key columns cannot be NULL
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", "receipt_type", "user_id", "thread_id"),
    )
    op.create_index("ix_receipts_stream_id", "receipts", ["stream_id"])
    op.create_table(
        "device_inbox",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        # the whole to-device event as JSON: type, sender, content
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id", "stream_id"),
        # a deleted device's messages can never be delivered
        sa.ForeignKeyConstraint(
            ["user_id", "device_id"],
            ["devices.user_id", "devices.device_id"],
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "device_inbox_txns",
        sa.Column("user_id", sa.Text(), nullable=False),
        # "" when the access token has no device
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("txn_id", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id", "event_type", "txn_id"),
    )
    op.create_table(
        "presence",
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("status_msg", sa.Text(), nullable=True),
        sa.Column("last_active_ts", sa.BigInteger(), nullable=False),
        sa.Column("last_user_sync_ts", sa.BigInteger(), nullable=False),
        sa.Column("currently_active", sa.Boolean(), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_presence_stream_id", "presence", ["stream_id"])


def downgrade() -> None:
    op.drop_index("ix_presence_stream_id", table_name="presence")
    op.drop_table("presence")
    op.drop_table("device_inbox_txns")
    op.drop_table("device_inbox")
    op.drop_index("ix_receipts_stream_id", table_name="receipts")
    op.drop_table("receipts")
