"""Federation's first tables: the signing keys of other servers, as each server (or the
notary that vouched for them) signed them, with how long they may be trusted; and each
destination's delivery health, the backoff that spares a server that is down.

Revision ID: 0019_federation
Revises: 0018_user_signature_stream
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_federation"
down_revision = "0018_user_signature_stream"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_keys_json",
        sa.Column("server_name", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        # the server whose answer this is: the key's owner, or a notary
        sa.Column("from_server", sa.Text(), nullable=False),
        sa.Column("ts_added_ms", sa.BigInteger(), nullable=False),
        # the response's valid_until_ts, or an old key's expired_ts
        sa.Column("ts_valid_until_ms", sa.BigInteger(), nullable=False),
        # the whole signed response, as the notary API serves it on
        sa.Column("key_json", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("server_name", "key_id", "from_server"),
    )
    op.create_table(
        "destinations",
        sa.Column("destination", sa.Text(), nullable=False),
        # when the last attempt failed and how long to wait after it; null while healthy
        sa.Column("retry_last_ts", sa.BigInteger(), nullable=True),
        sa.Column("retry_interval", sa.BigInteger(), nullable=True),
        # when the current run of failures began
        sa.Column("failure_ts", sa.BigInteger(), nullable=True),
        # the position in the outbound stream last delivered, for the queue (Federation II)
        sa.Column("last_successful_stream_ordering", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("destination"),
    )


def downgrade() -> None:
    op.drop_table("destinations")
    op.drop_table("server_keys_json")
