"""Search and user directory below HTTP: the pure rules, and the background updates that
index what existed before the indexes did, on both engines."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ranvier.config.models import DatabaseConfig, UserDirectoryConfig
from ranvier.errors import MatrixError
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.redaction_rules import Redactions
from ranvier.services.rooms.visibility import HistoryVisibility
from ranvier.services.search import (
    POPULATE_EVENT_SEARCH,
    BatchToken,
    SearchService,
    _text_of,
    highlights,
    search_words,
)
from ranvier.services.user_directory import (
    POPULATE_USER_DIRECTORY,
    UserDirectoryService,
    is_public_to_directory,
)
from ranvier.storage import search as search_store
from ranvier.storage.background_updates import BackgroundUpdater, pending_background_updates
from ranvier.storage.database import Database, open_database
from ranvier.storage.schema import upgrade
from ranvier.storage.search import SearchQuery
from tests.services.test_room_sender import ALICE, SERVER, create_room, message, new_sender


def test_search_words_are_letters_and_digits_lower_cased() -> None:
    assert search_words("Martians & MEN: 42_x!") == ["martians", "men", "42", "x"]
    assert search_words(' "quoted" OR -not* ') == ["quoted", "or", "not"]
    assert search_words("  ") == []


def test_highlights_add_the_words_a_prefix_matched() -> None:
    assert highlights(["mart"], ["Martians and martial arts", "smart"]) == [
        "mart",
        "martians",
        "martial",
    ]


def test_topics_index_the_plain_text_representation_too() -> None:
    content = {
        "topic": "Cats",
        "m.topic": {"m.text": [{"body": "<b>Cats</b>", "mimetype": "text/html"}, {"body": "Dogs"}]},
    }
    assert _text_of("m.room.topic", content) == ("content.topic", "Cats\nDogs")
    assert _text_of("m.room.message", {"body": 5}) is None
    assert _text_of("m.room.name", {"name": "Den"}) == ("content.name", "Den")


def test_batch_tokens_round_trip_and_refuse_garbage() -> None:
    token = BatchToken("recent", 42, ("room_id", "!r:x"))
    assert BatchToken.decode(token.encode()) == token
    assert BatchToken.decode(BatchToken("rank", 0).encode()) == BatchToken("rank", 0)
    for garbage in ("", "!!!", BatchToken("rank", 1).encode()[:-2] + "zz", "WyJyYW5rIiwtMV0"):
        with pytest.raises(MatrixError) as refused:
            BatchToken.decode(garbage)
        assert refused.value.errcode == "M_INVALID_PARAM"


def test_rooms_public_to_the_directory() -> None:
    assert is_public_to_directory({"join_rule": "public"}, None)
    assert is_public_to_directory({"join_rule": "invite"}, {"history_visibility": "world_readable"})
    assert not is_public_to_directory({"join_rule": "knock"}, {"history_visibility": "shared"})
    assert not is_public_to_directory(None, None)


async def test_background_updates_index_what_existed_before(database: Database) -> None:
    # a sender without the indexing hooks stands for the rooms of an older version
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    sent = await sender.send(message(room_id, "the ancient axolotl"))
    query = SearchQuery(user_id=ALICE, words=["axolotl"], keys=["content.body"])
    assert await search_store.search_events(database, query, order="recent", limit=10) == []

    loader = sender.loader
    redactions = Redactions(database, loader)
    search = SearchService(
        database,
        loader,
        HistoryVisibility(database, loader),
        ClientEventSerializer(database, loader, redactions),
        redactions,
    )
    directory = UserDirectoryService(UserDirectoryConfig(), database, SERVER)
    updater = BackgroundUpdater(database, batch_size=1)
    search.register_background_updates(updater)
    directory.register_background_updates(updater)
    # as the migration does on a database that already has rooms
    for name in (POPULATE_EVENT_SEARCH, POPULATE_USER_DIRECTORY):
        assert await updater.queue(name)
    assert not await updater.queue(POPULATE_EVENT_SEARCH)
    assert await updater.run_until_done() > 2
    assert await updater.has_completed_all()

    hits = await search_store.search_events(database, query, order="recent", limit=10)
    assert [hit.event_id for hit in hits] == [sent.event_id]
    # the room's join rule is public: the directory now shows its members to anyone
    async with database.read() as conn:
        rows = await conn.execute(text("SELECT room_id FROM user_directory_public_rooms"))
        assert [row.room_id for row in rows] == [room_id]


async def test_the_migration_queues_indexing_only_where_rooms_exist(
    database_config: DatabaseConfig,
) -> None:
    db = await open_database(database_config)
    try:
        await upgrade(db, "0007_event_reports")
        async with db.transaction() as conn:
            await conn.execute(
                text(
                    "INSERT INTO rooms (room_id, room_version, creator, created_ts) "
                    "VALUES ('!r:x', '10', '@a:x', 0)"
                )
            )
        await upgrade(db)
        pending = [update.name for update in await pending_background_updates(db)]
        # a room but no events yet: only the directory has something to rebuild
        assert pending == [POPULATE_USER_DIRECTORY]
    finally:
        await db.close()
