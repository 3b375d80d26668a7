"""Reserved for the work in progress that owns it (replace this docstring with what the
revision adds).

Revision ID: 0027_threepids
Revises: 0026_sso
"""

from __future__ import annotations

revision = "0027_threepids"
down_revision = "0026_sso"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
