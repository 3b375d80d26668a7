"""The answers given to other servers' transactions, on both engines."""

from __future__ import annotations

from ranvier.storage import federation_transactions as store
from ranvier.storage.database import Database


async def test_an_answer_is_kept_once_and_pruned_by_age(database: Database) -> None:
    assert await store.get_response(database, "a.example", "t1") is None
    await store.insert_response(database, "a.example", "t1", {"pdus": {"$e": {}}}, 1_000)
    # a concurrent duplicate keeps the first answer
    await store.insert_response(database, "a.example", "t1", {"pdus": {}}, 2_000)
    assert await store.get_response(database, "a.example", "t1") == {"pdus": {"$e": {}}}
    # transaction IDs are per origin
    assert await store.get_response(database, "b.example", "t1") is None
    await store.insert_response(database, "b.example", "t1", {"pdus": {}}, 5_000)
    assert await store.delete_older_than(database, 2_000) == 1
    assert await store.get_response(database, "a.example", "t1") is None
    assert await store.get_response(database, "b.example", "t1") == {"pdus": {}}
