"""An index on the events' transaction IDs by event: serving an event to the device that sent
it looks its transaction ID up by event ID, which otherwise read every transaction of the
device (thousands for an active user, at every sync).

Revision ID: 0031_event_txn_index
Revises: 0030_admin_api
"""

from __future__ import annotations

from alembic import op

revision = "0031_event_txn_index"
down_revision = "0030_admin_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_event_txn_ids_event", "event_txn_ids", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_event_txn_ids_event", table_name="event_txn_ids")
