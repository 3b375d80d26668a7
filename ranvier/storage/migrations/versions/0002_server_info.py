"""Create server_info, recording which server the database belongs to.

Start-up refuses a configuration whose server_name differs from the one recorded here, and
records which Ranvier version last started.

Revision ID: 0002_server_info
Revises: 0001_background_updates
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_server_info"
down_revision = "0001_background_updates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_info",
        # a single row: the database belongs to exactly one server
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("server_name", sa.Text(), nullable=False),
        sa.Column("created_by_version", sa.Text(), nullable=False),
        sa.Column("last_started_version", sa.Text(), nullable=False),
        sa.Column("last_started_ts", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="single_row"),
    )


def downgrade() -> None:
    op.drop_table("server_info")
