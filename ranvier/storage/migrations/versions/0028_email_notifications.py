"""Email notifications and identity-server bindings.

`email_pusher_throttle`: per email pusher and room, when a mail last told the user about
the room and how long the next one must wait (the throttle grows while the user keeps not
reading, as Synapse's). `threepid_id_server_bindings`: which identity server each of a
user's third-party identifiers was bound to through this homeserver, so that removing the
identifier or deactivating the account can unbind it there (spec: client-server-api
`POST /account/3pid/unbind`, "the id_server the identifier was added through").

Revision ID: 0028_email_notifications
Revises: 0027_threepids
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028_email_notifications"
down_revision = "0027_threepids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_pusher_throttle",
        sa.Column(
            "pusher_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("pushers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("last_sent_ts", sa.BigInteger(), nullable=False),
        sa.Column("throttle_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pusher_id", "room_id"),
    )
    op.create_table(
        "threepid_id_server_bindings",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("medium", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("id_server", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "medium", "address", "id_server"),
    )


def downgrade() -> None:
    op.drop_table("threepid_id_server_bindings")
    op.drop_table("email_pusher_throttle")
