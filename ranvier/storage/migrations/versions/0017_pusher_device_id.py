"""Record on each pusher the device that created it, so logging that device out (or
deleting it, or a password change that logs out other devices) removes its pushers, as
Synapse does. Pushers from before this revision have no device and stay until removed.

Revision ID: 0017_pusher_device_id
Revises: 0016_openid_user_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_pusher_device_id"
down_revision = "0016_openid_user_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pushers") as batch:
        batch.add_column(sa.Column("device_id", sa.Text(), nullable=True))
    op.create_index("ix_pushers_user_device", "pushers", ["user_id", "device_id"])


def downgrade() -> None:
    op.drop_index("ix_pushers_user_device", table_name="pushers")
    with op.batch_alter_table("pushers") as batch:
        batch.drop_column("device_id")
