"""Reserved for the work in progress that owns it (replace this docstring with what the
revision adds).

Revision ID: 0026_sso
Revises: 0025_sliding_sync
"""

from __future__ import annotations

revision = "0026_sso"
down_revision = "0025_sliding_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
