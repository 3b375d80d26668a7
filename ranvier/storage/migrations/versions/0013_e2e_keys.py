"""Create the end-to-end encryption key tables and the device_lists stream.

e2e_device_keys, e2e_one_time_keys and e2e_fallback_keys hold what each device publishes,
and go with their device (ON DELETE CASCADE). e2e_cross_signing_keys holds each user's
master, self-signing and user-signing keys; e2e_cross_signing_signatures the signatures
uploaded for devices and master keys. device_lists_stream records, with a position in the
device_lists stream, every change that makes others fetch a user's keys again. An index on
room_memberships by room and position serves /sync's "who came or went in these rooms".

Revision ID: 0013_e2e_keys
Revises: 0012_media
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_e2e_keys"
down_revision = "0012_media"
branch_labels = None
depends_on = None


def _device_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id", "device_id"], ["devices.user_id", "devices.device_id"], ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "e2e_device_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("key_json", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id"),
        _device_fk(),
    )
    op.create_table(
        "e2e_one_time_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("key_json", sa.Text(), nullable=False),
        # claims hand keys out in upload order
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id", "algorithm", "key_id"),
        _device_fk(),
    )
    op.create_index(
        "ix_e2e_one_time_keys_claim_order",
        "e2e_one_time_keys",
        ["user_id", "device_id", "algorithm", "ts"],
    )
    op.create_table(
        "e2e_fallback_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("key_json", sa.Text(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id", "algorithm"),
        _device_fk(),
    )
    op.create_table(
        "e2e_cross_signing_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("usage", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("key_json", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "usage"),
    )
    op.create_table(
        "e2e_cross_signing_signatures",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("target_user_id", sa.Text(), nullable=False),
        # a device ID or a master key's public key
        sa.Column("target_key", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("target_user_id", "target_key", "user_id", "key_id"),
    )
    op.create_table(
        "device_lists_stream",
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        # "" for a change to the user's cross-signing keys or signatures
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "user_id", "device_id"),
    )
    op.create_index(
        "ix_device_lists_stream_user_id", "device_lists_stream", ["user_id", "stream_id"]
    )
    # /sync asks who came or went in the user's rooms since its token
    op.create_index(
        "ix_room_memberships_room_stream", "room_memberships", ["room_id", "stream_ordering"]
    )


def downgrade() -> None:
    op.drop_index("ix_room_memberships_room_stream", table_name="room_memberships")
    op.drop_index("ix_device_lists_stream_user_id", table_name="device_lists_stream")
    op.drop_table("device_lists_stream")
    op.drop_table("e2e_cross_signing_signatures")
    op.drop_table("e2e_cross_signing_keys")
    op.drop_table("e2e_fallback_keys")
    op.drop_index("ix_e2e_one_time_keys_claim_order", table_name="e2e_one_time_keys")
    op.drop_table("e2e_one_time_keys")
    op.drop_table("e2e_device_keys")
    # the stream's position goes with its rows
    op.execute("DELETE FROM stream_positions WHERE stream_name = 'device_lists'")
