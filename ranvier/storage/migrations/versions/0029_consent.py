"""Reserved for the work in progress that owns it (replace this docstring with what the
revision adds).

Revision ID: 0029_consent
Revises: 0028_email_notifications
"""

from __future__ import annotations

revision = "0029_consent"
down_revision = "0028_email_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
