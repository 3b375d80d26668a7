"""Reserved for the work in progress that owns it (replace this docstring with what the
revision adds).

Revision ID: 0030_admin_api
Revises: 0029_consent
"""

from __future__ import annotations

revision = "0030_admin_api"
down_revision = "0029_consent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
