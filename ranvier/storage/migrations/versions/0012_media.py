"""Create the media repository tables: local media (what each media ID holds, who
uploaded it, whether it is quarantined or protected) and the thumbnails made of it. The
bytes live in `media_store_path`, named by their SHA-256.

Revision ID: 0012_media
Revises: 0011_push
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_media"
down_revision = "0011_push"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "local_media",
        sa.Column("media_id", sa.Text(), primary_key=True),
        # no foreign key: media outlives a deactivated uploader, as in Synapse
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        # NULL until the content arrives (POST /_matrix/media/v1/create reserves the ID)
        sa.Column("sha256", sa.Text(), nullable=True),
        sa.Column("media_length", sa.BigInteger(), nullable=True),
        sa.Column("media_type", sa.Text(), nullable=True),
        sa.Column("upload_name", sa.Text(), nullable=True),
        # when a reserved ID without content is dropped
        sa.Column("unused_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("last_access_ts", sa.BigInteger(), nullable=True),
        sa.Column("quarantined_by", sa.Text(), nullable=True),
        sa.Column("safe_from_quarantine", sa.Boolean(), nullable=False, server_default=sa.false()),
        # uploaded while enable_authenticated_media was on: never served unauthenticated
        sa.Column("authenticated", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_local_media_user_id_created_ts", "local_media", ["user_id", "created_ts"])
    op.create_index("ix_local_media_sha256", "local_media", ["sha256"])
    op.create_table(
        "local_media_thumbnails",
        sa.Column("media_id", sa.Text(), nullable=False),
        # the box asked for (a `thumbnail_sizes` entry, or the request's with dynamic_thumbnails)
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("animated", sa.Boolean(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["local_media.media_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("media_id", "width", "height", "method", "animated"),
    )
    op.create_index("ix_local_media_thumbnails_sha256", "local_media_thumbnails", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_local_media_thumbnails_sha256", table_name="local_media_thumbnails")
    op.drop_table("local_media_thumbnails")
    op.drop_index("ix_local_media_sha256", table_name="local_media")
    op.drop_index("ix_local_media_user_id_created_ts", table_name="local_media")
    op.drop_table("local_media")
