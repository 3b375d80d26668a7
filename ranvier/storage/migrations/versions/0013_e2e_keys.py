"""End-to-end encryption key tables (filled in by the E2EE work).

Revision ID: 0013_e2e_keys
Revises: 0012_media
"""

from __future__ import annotations

revision = "0013_e2e_keys"
down_revision = "0012_media"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
