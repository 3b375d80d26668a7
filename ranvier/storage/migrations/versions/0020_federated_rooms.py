"""Rooms shared with other servers: the transactions other servers sent (each answered
once, however often it is retried), which rooms each destination must be kept up to date
in and how far it got (for catch-up after it was down), and events that passed the auth
rules against their own state but not against the room's current state (soft-failed:
kept, but neither served to clients nor built upon).

Revision ID: 0020_federated_rooms
Revises: 0019_federation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_federated_rooms"
down_revision = "0019_federation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "received_transactions",
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("transaction_id", sa.Text(), nullable=False),
        # the answer given, sent again to a retry
        sa.Column("response_json", sa.Text(), nullable=False),
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("origin", "transaction_id"),
    )
    op.create_index(
        "ix_received_transactions_received_ts", "received_transactions", ["received_ts"]
    )
    op.create_table(
        "destination_rooms",
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        # the newest event of the room the destination should have (catch-up sends it)
        sa.Column("stream_ordering", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("destination", "room_id"),
    )
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("soft_failed", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("soft_failed")
    op.drop_table("destination_rooms")
    op.drop_index("ix_received_transactions_received_ts", table_name="received_transactions")
    op.drop_table("received_transactions")
