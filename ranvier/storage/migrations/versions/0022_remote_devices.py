"""Device lists, keys and to-device messages shared with other servers (placeholder: filled
by the change that needs it).

Revision ID: 0022_remote_devices
Revises: 0021_federated_edus
"""

from __future__ import annotations

revision = "0022_remote_devices"
down_revision = "0021_federated_edus"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
