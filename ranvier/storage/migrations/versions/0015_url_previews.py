"""Create the URL preview cache: the OpenGraph answer for a URL as fetched at a time, kept
until it expires, so a repeated preview is answered without fetching the page again.

Revision ID: 0015_url_previews
Revises: 0014_room_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_url_previews"
down_revision = "0014_room_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "url_previews",
        # SHA-256 of the URL: URLs can outgrow what a PostgreSQL index entry holds
        sa.Column("url_hash", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        # when it was fetched; `ts` in a preview request picks the answer as of then
        sa.Column("download_ts", sa.BigInteger(), nullable=False),
        sa.Column("expires_ts", sa.BigInteger(), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        # the OpenGraph answer, JSON
        sa.Column("og", sa.Text(), nullable=False),
        # the local media holding the preview's image, if it has one
        sa.Column("media_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("url_hash", "download_ts"),
    )
    op.create_index("ix_url_previews_expires_ts", "url_previews", ["expires_ts"])


def downgrade() -> None:
    op.drop_index("ix_url_previews_expires_ts", table_name="url_previews")
    op.drop_table("url_previews")
