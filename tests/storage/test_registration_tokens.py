"""The registration token store on both engines: validity, pending and completed counts."""

from __future__ import annotations

from sqlalchemy import text

from ranvier.storage.database import Database
from ranvier.storage.registration_tokens import RegistrationTokenStore

NOW = 1_700_000_000_000
LIFETIME = 60_000


async def start_session(db: Database, session_id: str, now_ms: int = NOW) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            text(
                "INSERT INTO ui_auth_sessions (session_id, creation_ts, operation, clientdict, "
                "serverdict) VALUES (:id, :ts, 'register', '{}', '{}')"
            ),
            {"id": session_id, "ts": now_ms},
        )


async def test_create_get_update_delete(database: Database) -> None:
    store = RegistrationTokenStore(database, LIFETIME)
    assert await store.create("abc", 2, None)
    assert not await store.create("abc", 5, None)
    token = await store.get("abc", NOW)
    assert token is not None
    assert token.as_json() == {
        "token": "abc",
        "uses_allowed": 2,
        "pending": 0,
        "completed": 0,
        "expiry_time": None,
    }
    updated = await store.update("abc", NOW, expiry_time=NOW + 5)
    assert updated is not None and (updated.uses_allowed, updated.expiry_time) == (2, NOW + 5)
    updated = await store.update("abc", NOW, uses_allowed=None)
    assert updated is not None and (updated.uses_allowed, updated.expiry_time) == (None, NOW + 5)
    assert await store.update("missing", NOW, uses_allowed=1) is None
    assert await store.delete("abc")
    assert not await store.delete("abc")
    assert await store.get("abc", NOW) is None


async def test_uses_count_pending_then_completed(database: Database) -> None:
    store = RegistrationTokenStore(database, LIFETIME)
    await store.create("two", 2, None)
    for session in ("s1", "s2", "s3"):
        await start_session(database, session)
    assert await store.hold("s1", "two", NOW)
    # the same session retrying holds no second use
    assert await store.hold("s1", "two", NOW)
    assert await store.hold("s2", "two", NOW)
    token = await store.get("two", NOW)
    assert token is not None and (token.pending, token.completed) == (2, 0)
    assert not await store.is_valid("two", NOW)
    assert not await store.hold("s3", "two", NOW)
    assert await store.session_token("s1") == "two"
    assert await store.session_token("s3") is None

    await store.complete("s1", "two")
    token = await store.get("two", NOW)
    assert token is not None and (token.pending, token.completed) == (1, 1)
    assert [t.token for t in await store.list_tokens(False, NOW)] == ["two"]
    assert await store.list_tokens(True, NOW) == []


async def test_abandoned_sessions_release_their_use(database: Database) -> None:
    store = RegistrationTokenStore(database, LIFETIME)
    await store.create("once", 1, None)
    await start_session(database, "old")
    await start_session(database, "new")
    assert await store.hold("old", "once", NOW)
    assert not await store.hold("new", "once", NOW + 1)
    later = NOW + LIFETIME + 1
    assert await store.is_valid("once", later)
    token = await store.get("once", later)
    assert token is not None and token.pending == 0


async def test_deleting_a_session_releases_its_use(database: Database) -> None:
    store = RegistrationTokenStore(database, LIFETIME)
    await store.create("once", 1, None)
    await start_session(database, "s")
    assert await store.hold("s", "once", NOW)
    async with database.transaction() as conn:
        await conn.execute(text("DELETE FROM ui_auth_sessions WHERE session_id = 's'"))
    token = await store.get("once", NOW)
    assert token is not None and token.pending == 0


async def test_expiry_and_valid_filter(database: Database) -> None:
    store = RegistrationTokenStore(database, LIFETIME)
    await store.create("expired", None, NOW - 1)
    await store.create("fresh", None, NOW + 1000)
    await store.create("forever", None, None)
    await store.create("zero", 0, None)
    assert [t.token for t in await store.list_tokens(None, NOW)] == [
        "expired",
        "forever",
        "fresh",
        "zero",
    ]
    assert [t.token for t in await store.list_tokens(True, NOW)] == ["forever", "fresh"]
    assert [t.token for t in await store.list_tokens(False, NOW)] == ["expired", "zero"]
    assert not await store.is_valid("expired", NOW)
    assert not await store.is_valid("unknown", NOW)
    assert not await store.hold("x", "unknown", NOW)
