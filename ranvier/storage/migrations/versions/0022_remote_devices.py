"""Other servers' users' device lists, kept while we share a room with them: one row per
user with the stream ID their server gave the list and their cross-signing keys, and one
row per device with its keys (spec: server-server-api "Device Management").

Revision ID: 0022_remote_devices
Revises: 0021_federated_edus
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_remote_devices"
down_revision = "0021_federated_edus"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remote_device_lists",
        sa.Column("user_id", sa.Text(), nullable=False),
        # the newest stream_id of the user's server we have applied
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("master_key_json", sa.Text(), nullable=True),
        sa.Column("self_signing_key_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "remote_devices",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("keys_json", sa.Text(), nullable=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", "device_id"),
    )


def downgrade() -> None:
    op.drop_table("remote_devices")
    op.drop_table("remote_device_lists")
