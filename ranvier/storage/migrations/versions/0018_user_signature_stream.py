"""Record in the device_lists stream the key changes only one user is told of: a new
user-signing key (private to its owner) and a signature of another user's master key (only
the signer sees it), as Synapse keeps them apart from device list changes, so room-mates
are not sent to refetch keys that did not change for them.

Revision ID: 0018_user_signature_stream
Revises: 0017_pusher_device_id
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_user_signature_stream"
down_revision = "0017_pusher_device_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_signature_stream",
        # a device_lists stream position
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        # the only user told of the change
        sa.Column("from_user_id", sa.Text(), nullable=False),
        # whose keys changed for them
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "from_user_id", "user_id"),
    )
    op.create_index(
        "ix_user_signature_stream_from_user",
        "user_signature_stream",
        ["from_user_id", "stream_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_user_signature_stream_from_user", table_name="user_signature_stream")
    op.drop_table("user_signature_stream")
