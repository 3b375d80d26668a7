"""Typing, receipts and presence shared with other servers (placeholder: filled by the
change that needs it).

Revision ID: 0021_federated_edus
Revises: 0020_federated_rooms
"""

from __future__ import annotations

revision = "0021_federated_edus"
down_revision = "0020_federated_rooms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
