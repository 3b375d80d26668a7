"""Create the room DAG: rooms, events with their edges and auth, forward extremities, state
groups stored as deltas, current state, memberships, transaction IDs, redactions, relations,
aliases.

Revision ID: 0006_rooms
Revises: 0005_registration_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_rooms"
down_revision = "0005_registration_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("room_id", sa.Text(), primary_key=True),
        sa.Column("room_version", sa.Text(), nullable=False),
        sa.Column("creator", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.Text(), primary_key=True),
        # the position in the room-events stream; sync tokens and /messages use it
        sa.Column("stream_ordering", sa.BigInteger(), nullable=False, unique=True),
        # depth: the position in the DAG, for backwards pagination
        sa.Column("topological_ordering", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("state_key", sa.Text(), nullable=True),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("origin_server_ts", sa.BigInteger(), nullable=False),
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.Column("outlier", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("rejected_reason", sa.Text(), nullable=True),
        # the PDU exactly as built or received, for hashes and signatures
        sa.Column("json", sa.Text(), nullable=False),
    )
    op.create_index("ix_events_room_stream", "events", ["room_id", "stream_ordering"])
    op.create_index(
        "ix_events_room_topological",
        "events",
        ["room_id", "topological_ordering", "stream_ordering"],
    )
    op.create_table(
        "event_edges",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("prev_event_id", sa.Text(), primary_key=True),
    )
    op.create_index("ix_event_edges_prev", "event_edges", ["prev_event_id"])
    op.create_table(
        "event_auth",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("auth_id", sa.Text(), primary_key=True),
    )
    op.create_table(
        "room_forward_extremities",
        sa.Column("room_id", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.Text(), primary_key=True),
    )
    op.create_table(
        "state_groups",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        # the group this one is a delta against; NULL for a full snapshot
        sa.Column("prev_group", sa.BigInteger(), nullable=True),
        sa.Column("chain_length", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "state_group_state",
        sa.Column("state_group", sa.BigInteger(), primary_key=True),
        sa.Column("type", sa.Text(), primary_key=True),
        sa.Column("state_key", sa.Text(), primary_key=True),
        # NULL removes the key inherited from prev_group
        sa.Column("event_id", sa.Text(), nullable=True),
    )
    op.create_table(
        "event_to_state_groups",
        sa.Column("event_id", sa.Text(), primary_key=True),
        # the state after the event
        sa.Column("state_group", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "current_state_events",
        sa.Column("room_id", sa.Text(), primary_key=True),
        sa.Column("type", sa.Text(), primary_key=True),
        sa.Column("state_key", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("membership", sa.Text(), nullable=True),
    )
    op.create_index("ix_current_state_events_member", "current_state_events", ["state_key", "type"])
    op.create_table(
        "room_memberships",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("membership", sa.Text(), nullable=False),
        sa.Column("stream_ordering", sa.BigInteger(), nullable=False),
        sa.Column("forgotten", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_room_memberships_user", "room_memberships", ["user_id", "room_id"])
    op.create_table(
        "event_txn_ids",
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("device_id", sa.Text(), primary_key=True),
        # spec: a transaction ID is scoped to one device and one endpoint (its path)
        sa.Column("endpoint", sa.Text(), primary_key=True),
        sa.Column("txn_id", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("inserted_ts", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "redactions",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("redacts", sa.Text(), nullable=False),
    )
    op.create_index("ix_redactions_redacts", "redactions", ["redacts"])
    op.create_table(
        "event_relations",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("relates_to_id", sa.Text(), nullable=False),
        sa.Column("relation_type", sa.Text(), nullable=False),
        sa.Column("aggregation_key", sa.Text(), nullable=True),
    )
    op.create_index("ix_event_relations_parent", "event_relations", ["relates_to_id"])
    op.create_table(
        "room_aliases",
        sa.Column("room_alias", sa.Text(), primary_key=True),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("creator", sa.Text(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_room_aliases_room", "room_aliases", ["room_id"])


def downgrade() -> None:
    for table in (
        "room_aliases",
        "event_relations",
        "redactions",
        "event_txn_ids",
        "room_memberships",
        "current_state_events",
        "event_to_state_groups",
        "state_group_state",
        "state_groups",
        "room_forward_extremities",
        "event_auth",
        "event_edges",
        "events",
        "rooms",
    ):
        op.drop_table(table)
