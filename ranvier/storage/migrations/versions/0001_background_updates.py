"""Create background_updates, the queue of long data rewrites run in batches.

Revision ID: 0001_background_updates
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_background_updates"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "background_updates",
        sa.Column("update_name", sa.String(255), primary_key=True),
        # what the handler needs to carry on where it stopped, as JSON
        sa.Column("progress_json", sa.Text(), nullable=False, server_default="{}"),
        # another update that must have finished (its row gone) before this one starts
        sa.Column("depends_on", sa.String(255), nullable=True),
        sa.Column("ordering", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_item_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("total_duration_ms", sa.Float(), nullable=False, server_default="0"),
        sa.Column("average_items_per_ms", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("background_updates")
