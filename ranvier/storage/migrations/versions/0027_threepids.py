"""Create the tables of third-party identifiers (email addresses): the validation sessions
a requestToken starts, the tokens mailed for them, and the addresses bound to accounts.

Revision ID: 0027_threepids
Revises: 0026_sso
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027_threepids"
down_revision = "0026_sso"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "threepid_validation_session",
        sa.Column("session_id", sa.Text(), primary_key=True),
        sa.Column("medium", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=False),
        # the send_attempt of the request that last sent a mail
        sa.Column("last_send_attempt", sa.BigInteger(), nullable=False),
        # ms since the epoch; NULL until a token of the session is submitted
        sa.Column("validated_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_threepid_validation_session_client_secret_medium_address",
        "threepid_validation_session",
        ["client_secret", "medium", "address"],
    )
    op.create_table(
        "threepid_validation_token",
        # stored as its SHA-256, like access tokens: a database dump does not hold links
        sa.Column("token_hash", sa.Text(), primary_key=True),
        sa.Column(
            "session_id",
            sa.Text(),
            sa.ForeignKey("threepid_validation_session.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("next_link", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_threepid_validation_token_session_id", "threepid_validation_token", ["session_id"]
    )
    op.create_table(
        "user_threepids",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("medium", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("validated_at", sa.BigInteger(), nullable=False),
        sa.Column("added_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("medium", "address", name="uq_user_threepids_medium_address"),
    )
    op.create_index("ix_user_threepids_user_id", "user_threepids", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_user_threepids_user_id", table_name="user_threepids")
    op.drop_table("user_threepids")
    op.drop_index("ix_threepid_validation_token_session_id", table_name="threepid_validation_token")
    op.drop_table("threepid_validation_token")
    op.drop_index(
        "ix_threepid_validation_session_client_secret_medium_address",
        table_name="threepid_validation_session",
    )
    op.drop_table("threepid_validation_session")
