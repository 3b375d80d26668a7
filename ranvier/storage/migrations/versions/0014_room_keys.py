"""Create the server-side room key backup tables, e2e_room_keys_versions and e2e_room_keys,
and dehydrated_devices.

e2e_room_keys_versions keeps each backup version of a user with its algorithm, auth_data
and etag. A deleted version stays as a tombstone (`deleted`), so that version numbers keep
increasing and deleting it again succeeds, as the spec asks. e2e_room_keys holds the
encrypted megolm session keys of a version, one row per room and session.

dehydrated_devices (MSC3814) names each user's dehydrated device, at most one, with the
encrypted device data the client stored; the device itself is a row of devices (its keys
and to-device inbox hang off it), and deleting that row deletes this one.

Revision ID: 0014_room_keys
Revises: 0013_e2e_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_room_keys"
down_revision = "0013_e2e_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "e2e_room_keys_versions",
        sa.Column(
            "user_id",
            sa.Text(),
            sa.ForeignKey("users.user_id", ondelete="CASCADE"),
            nullable=False,
        ),
        # a number, so that "10" comes after "9"; clients see it as a string
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        # JSON object, stored as the client sent it
        sa.Column("auth_data", sa.Text(), nullable=False),
        # bumped in the transaction that changes the version's keys
        sa.Column("etag", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("user_id", "version"),
    )
    op.create_table(
        "e2e_room_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("first_message_index", sa.BigInteger(), nullable=False),
        sa.Column("forwarded_count", sa.BigInteger(), nullable=False),
        sa.Column("is_verified", sa.Boolean(), nullable=False),
        # JSON object (the encrypted session), stored as the client sent it
        sa.Column("session_data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "version", "room_id", "session_id"),
        sa.ForeignKeyConstraint(
            ["user_id", "version"],
            ["e2e_room_keys_versions.user_id", "e2e_room_keys_versions.version"],
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "dehydrated_devices",
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("device_id", sa.Text(), nullable=False),
        # JSON object, stored as the client sent it
        sa.Column("device_data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id", "device_id"],
            ["devices.user_id", "devices.device_id"],
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("dehydrated_devices")
    op.drop_table("e2e_room_keys")
    op.drop_table("e2e_room_keys_versions")
