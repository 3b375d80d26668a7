"""Create the push tables: users' push rules and their changes to the default rules, the
push_rules stream per user, the notify/highlight actions recorded per event per user, read
positions that clear them, and pushers.

Revision ID: 0011_push
Revises: 0010_ephemeral
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_push"
down_revision = "0010_ephemeral"
branch_labels = None
depends_on = None


def _user_fk() -> sa.ForeignKey:
    return sa.ForeignKey("users.user_id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "push_rules",
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        # override, content, room, sender or underride
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        # higher first within the kind; before/after insert between neighbours
        sa.Column("priority", sa.BigInteger(), nullable=False),
        # JSON; conditions for override/underride, pattern for content rules
        sa.Column("conditions", sa.Text(), nullable=True),
        sa.Column("pattern", sa.Text(), nullable=True),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "kind", "rule_id"),
    )
    op.create_table(
        "push_rule_settings",
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        # NULL keeps the rule's own value (for server-default rules: the spec's)
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("actions", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", "rule_id"),
    )
    op.create_table(
        "push_rules_stream",
        sa.Column("user_id", sa.Text(), _user_fk(), primary_key=True),
        # position in the "push_rules" stream of the user's last change
        sa.Column("stream_id", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "event_push_actions",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("stream_ordering", sa.BigInteger(), nullable=False),
        # "main" for the main timeline, else the thread root's event ID
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.Column("highlight", sa.Boolean(), nullable=False),
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "user_id"),
    )
    op.create_index(
        "ix_event_push_actions_user_room",
        "event_push_actions",
        ["user_id", "room_id", "stream_ordering"],
    )
    op.create_index(
        "ix_event_push_actions_user_stream", "event_push_actions", ["user_id", "stream_ordering"]
    )
    op.create_table(
        "push_read_positions",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        # "" for an unthreaded receipt (it reads every thread), "main" or a thread root
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("stream_ordering", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "room_id", "thread_id"),
    )
    op.create_table(
        "pushers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("app_id", sa.Text(), nullable=False),
        sa.Column("pushkey", sa.Text(), nullable=False),
        sa.Column("app_display_name", sa.Text(), nullable=False),
        sa.Column("device_display_name", sa.Text(), nullable=False),
        sa.Column("profile_tag", sa.Text(), nullable=True),
        sa.Column("lang", sa.Text(), nullable=False),
        # JSON of the pusher's `data` (url, format, ...)
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        # the last event pushed (or skipped); delivery resumes after it
        sa.Column("last_stream_ordering", sa.BigInteger(), nullable=False),
        sa.Column("failing_since", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("app_id", "pushkey", "user_id", name="uq_pushers_app_pushkey_user"),
    )
    op.create_index("ix_pushers_user", "pushers", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_pushers_user", table_name="pushers")
    op.drop_table("pushers")
    op.drop_table("push_read_positions")
    op.drop_index("ix_event_push_actions_user_stream", table_name="event_push_actions")
    op.drop_index("ix_event_push_actions_user_room", table_name="event_push_actions")
    op.drop_table("event_push_actions")
    op.drop_table("push_rules_stream")
    op.drop_table("push_rule_settings")
    op.drop_table("push_rules")
