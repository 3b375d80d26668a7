"""The rooms application services publish in their networks' room directories."""

from __future__ import annotations

from sqlalchemy import Column, Index, PrimaryKeyConstraint, Table, Text

from ranvier.storage.metadata import metadata

appservice_room_list = Table(
    "appservice_room_list",
    metadata,
    Column("appservice_id", Text, nullable=False),
    Column("network_id", Text, nullable=False),
    Column("room_id", Text, nullable=False),
    PrimaryKeyConstraint("appservice_id", "network_id", "room_id"),
    Index("ix_appservice_room_list_room_id", "room_id"),
)
