"""Media repository tables (filled in by the media work).

Revision ID: 0012_media
Revises: 0011_push
"""

from __future__ import annotations

revision = "0012_media"
down_revision = "0011_push"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
