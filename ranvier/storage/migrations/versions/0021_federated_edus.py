"""The outbound EDUs that must not be lost: to-device messages and device list updates for
other servers, kept per destination in the order queued until the destination acknowledges
the transaction that carried them (spec: server-server-api "Send-to-device messaging",
"Device Management").

Revision ID: 0021_federated_edus
Revises: 0020_federated_rooms
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_federated_edus"
down_revision = "0020_federated_rooms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_outbox",
        # the order EDUs are sent in, per destination
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("edu_type", sa.Text(), nullable=False),
        sa.Column("content_json", sa.Text(), nullable=False),
        # EDUs queued under the same key replace those still pending (one user's device
        # list: only the newest change need go, its prev_id makes the receiver resync)
        sa.Column("coalesce_key", sa.Text(), nullable=True),
        # under one key, a newer change (a higher position) is never replaced by an older
        sa.Column("coalesce_order", sa.BigInteger(), nullable=True),
        sa.Column("queued_ts", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_federation_outbox_destination", "federation_outbox", ["destination", "id"])
    op.create_index(
        "ix_federation_outbox_key", "federation_outbox", ["destination", "coalesce_key"]
    )


def downgrade() -> None:
    op.drop_index("ix_federation_outbox_key", table_name="federation_outbox")
    op.drop_index("ix_federation_outbox_destination", table_name="federation_outbox")
    op.drop_table("federation_outbox")
