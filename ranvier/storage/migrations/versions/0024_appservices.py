"""Application services: per service, how far each stream has been handed to it and the
transactions not yet acknowledged (kept whole, so a restart resends exactly what was sent
under each transaction ID, spec: application-service-api "Pushing events"); and the rooms
each service publishes in its networks' room directories (spec: client-server-api
`PUT /directory/list/appservice/{networkId}/{roomId}`).

Revision ID: 0024_appservices
Revises: 0023_remote_media
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_appservices"
down_revision = "0023_remote_media"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appservice_state",
        sa.Column("appservice_id", sa.Text(), primary_key=True),
        # the highest transaction ID made for the service: IDs are never reused
        sa.Column("last_txn_id", sa.BigInteger(), nullable=False, server_default="0"),
        # up to where each stream has been put into transactions
        sa.Column("events_position", sa.BigInteger(), nullable=False),
        sa.Column("receipts_position", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("presence_position", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("to_device_position", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("device_lists_position", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "appservice_txns",
        sa.Column("appservice_id", sa.Text(), nullable=False),
        sa.Column("txn_id", sa.BigInteger(), nullable=False),
        # the JSON body PUT to /_matrix/app/v1/transactions/{txn_id}
        sa.Column("body_json", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("appservice_id", "txn_id"),
    )
    op.create_table(
        "appservice_room_list",
        sa.Column("appservice_id", sa.Text(), nullable=False),
        sa.Column("network_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("appservice_id", "network_id", "room_id"),
    )
    op.create_index("ix_appservice_room_list_room_id", "appservice_room_list", ["room_id"])


def downgrade() -> None:
    op.drop_index("ix_appservice_room_list_room_id", table_name="appservice_room_list")
    op.drop_table("appservice_room_list")
    op.drop_table("appservice_txns")
    op.drop_table("appservice_state")
