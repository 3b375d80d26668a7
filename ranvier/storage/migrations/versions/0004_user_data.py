"""Create per-user data: account data (global and per room), filters, custom profile fields,
and the stream positions that order account data changes for /sync.

Revision ID: 0004_user_data
Revises: 0003_accounts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_user_data"
down_revision = "0003_accounts"
branch_labels = None
depends_on = None


def _user_fk() -> sa.ForeignKey:
    return sa.ForeignKey("users.user_id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "stream_positions",
        # e.g. "account_data"; one row per stream, the last position handed out
        sa.Column("stream_name", sa.Text(), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "account_data",
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("account_data_type", sa.Text(), nullable=False),
        # canonical JSON of the content object
        sa.Column("content", sa.Text(), nullable=False),
        # position in the "account_data" stream of the last change
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "account_data_type"),
    )
    op.create_index("ix_account_data_user_id_stream_id", "account_data", ["user_id", "stream_id"])
    op.create_table(
        "room_account_data",
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        # no foreign key: a user may keep account data (tags) for rooms this server
        # does not know, or has forgotten
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("account_data_type", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "room_id", "account_data_type"),
    )
    op.create_index(
        "ix_room_account_data_user_id_stream_id", "room_account_data", ["user_id", "stream_id"]
    )
    op.create_table(
        "user_filters",
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("filter_id", sa.BigInteger(), nullable=False),
        # canonical JSON, so that an identical upload finds the existing filter
        sa.Column("filter_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "filter_id"),
    )
    op.create_table(
        "profile_fields",
        # custom profile fields (spec v1.16); displayname and avatar_url stay in profiles
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("field_name", sa.Text(), nullable=False),
        # canonical JSON of the value: custom fields may hold any JSON type
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "field_name"),
    )


def downgrade() -> None:
    op.drop_table("profile_fields")
    op.drop_table("user_filters")
    op.drop_index("ix_room_account_data_user_id_stream_id", table_name="room_account_data")
    op.drop_table("room_account_data")
    op.drop_index("ix_account_data_user_id_stream_id", table_name="account_data")
    op.drop_table("account_data")
    op.drop_table("stream_positions")
