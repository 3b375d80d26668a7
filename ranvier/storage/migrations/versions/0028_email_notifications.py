"""Reserved for the work in progress that owns it (replace this docstring with what the
revision adds).

Revision ID: 0028_email_notifications
Revises: 0027_threepids
"""

from __future__ import annotations

revision = "0028_email_notifications"
down_revision = "0027_threepids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
