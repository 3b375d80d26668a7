"""Other servers' media fetched for our users: one row per (origin, media ID) with the
file (by SHA-256, in media_store_path beside local media), when it was fetched and last
served (for purge_media_cache), and its quarantine; and the thumbnails fetched of it, one
per size asked (spec: client-server-api "Content repository", server-server-api
"Content Repository").

Revision ID: 0023_remote_media
Revises: 0022_remote_devices
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_remote_media"
down_revision = "0022_remote_devices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remote_media_cache",
        sa.Column("media_origin", sa.Text(), nullable=False),
        sa.Column("media_id", sa.Text(), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("media_length", sa.BigInteger(), nullable=False),
        sa.Column("upload_name", sa.Text(), nullable=True),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("last_access_ts", sa.BigInteger(), nullable=False),
        sa.Column("quarantined_by", sa.Text(), nullable=True),
        # fetched while enable_authenticated_media was on: not served on the legacy paths
        sa.Column("authenticated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("media_origin", "media_id"),
    )
    op.create_index("ix_remote_media_cache_sha256", "remote_media_cache", ["sha256"])
    op.create_index(
        "ix_remote_media_cache_last_access_ts", "remote_media_cache", ["last_access_ts"]
    )
    op.create_table(
        "remote_media_cache_thumbnails",
        sa.Column("media_origin", sa.Text(), nullable=False),
        sa.Column("media_id", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("animated", sa.Boolean(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "media_origin", "media_id", "width", "height", "method", "animated"
        ),
    )
    op.create_index(
        "ix_remote_media_cache_thumbnails_sha256", "remote_media_cache_thumbnails", ["sha256"]
    )


def downgrade() -> None:
    op.drop_index(
        "ix_remote_media_cache_thumbnails_sha256", table_name="remote_media_cache_thumbnails"
    )
    op.drop_table("remote_media_cache_thumbnails")
    op.drop_index("ix_remote_media_cache_last_access_ts", table_name="remote_media_cache")
    op.drop_index("ix_remote_media_cache_sha256", table_name="remote_media_cache")
    op.drop_table("remote_media_cache")
