"""Room key backup tables (filled in by the key backup work).

Revision ID: 0014_room_keys
Revises: 0013_e2e_keys
"""

from __future__ import annotations

revision = "0014_room_keys"
down_revision = "0013_e2e_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
