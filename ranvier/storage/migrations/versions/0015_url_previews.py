"""URL preview cache tables (filled in by the URL preview work).

Revision ID: 0015_url_previews
Revises: 0014_room_keys
"""

from __future__ import annotations

revision = "0015_url_previews"
down_revision = "0014_room_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
