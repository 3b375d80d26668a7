"""The Keyring over a real database (both engines) and a scripted federation client: where
keys come from, what is cached, and which answers are refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import delete

from ranvier.federation.errors import DestinationUnreachable
from ranvier.protocol.server_keys import OldVerifyKey, add_notary_signature, build_key_response
from ranvier.protocol.signing import InvalidSignatureError, MissingSignatureError, sign_json
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.services.federation.keyring import (
    KEY_QUERY_PATH,
    SERVER_KEY_PATH,
    KeyQuery,
    Keyring,
    OwnKeys,
    TrustedKeyServer,
)
from ranvier.storage.database import Database
from ranvier.storage.server_keys import ServerKeyStore, server_keys_json

NOW = 1_700_000_000_000
HOUR = 3_600_000
OURS = ServerSigningKey.from_seed(b"\x10" * 32, "ours")
B_KEY = ServerSigningKey.from_seed(b"\x11" * 32, "b1")
B_OLD = ServerSigningKey.from_seed(b"\x12" * 32, "b0")
NOTARY_KEY = ServerSigningKey.from_seed(b"\x13" * 32, "n1")
OWN = OwnKeys("a.example", OURS, {}, 24 * HOUR)


def b_response(valid_until_ts: int = NOW + HOUR) -> dict[str, Any]:
    return build_key_response(
        "b.example",
        B_KEY,
        {B_OLD.key_id: OldVerifyKey(B_OLD.verify_key, NOW - HOUR)},
        valid_until_ts,
    )


Handler = Callable[[str, str, Any], Any]


class ScriptedClient:
    """Answers key requests from `handler(destination, path, body)`; counts the calls."""

    def __init__(self, handler: Handler, delay: float = 0) -> None:
        self.handler = handler
        self.delay = delay
        self.calls: list[tuple[str, str, Any]] = []

    async def get_json(
        self,
        destination: str,
        path: str,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        authenticated: bool = True,
        timeout: float | None = None,
        ignore_backoff: bool = False,
    ) -> Any:
        assert not authenticated and ignore_backoff
        return await self._answer(destination, path, None)

    async def post_json(
        self,
        destination: str,
        path: str,
        body: Any,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        authenticated: bool = True,
        timeout: float | None = None,
        ignore_backoff: bool = False,
    ) -> Any:
        assert not authenticated and ignore_backoff
        return await self._answer(destination, path, body)

    async def _answer(self, destination: str, path: str, body: Any) -> Any:
        self.calls.append((destination, path, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.handler(destination, path, body)


def direct(response: dict[str, Any]) -> Handler:
    def handler(destination: str, path: str, body: Any) -> Any:
        assert (destination, path) == ("b.example", SERVER_KEY_PATH)
        return response

    return handler


def unreachable_then_notary(answers: list[dict[str, Any]]) -> Handler:
    def handler(destination: str, path: str, body: Any) -> Any:
        if destination == "b.example":
            raise DestinationUnreachable("b.example", "connection refused")
        assert (destination, path) == ("notary.example", KEY_QUERY_PATH)
        assert set(body["server_keys"]) == {"b.example"}
        return {"server_keys": answers}

    return handler


def keyring(
    database: Database,
    client: ScriptedClient | None,
    trusted: Sequence[TrustedKeyServer] = (),
    clock: Callable[[], int] = lambda: NOW,
    store: ServerKeyStore | None = None,
) -> Keyring:
    store = ServerKeyStore(database) if store is None else store
    return Keyring(OWN, store, client, trusted, clock=clock)


def signed_by_b(obj: dict[str, Any], key: ServerSigningKey = B_KEY) -> dict[str, Any]:
    return sign_json(obj, "b.example", key)


async def test_fetched_keys_verify_and_are_cached(database: Database) -> None:
    client = ScriptedClient(direct(b_response()))
    ring = keyring(database, client)
    await ring.verify_json_for_server("b.example", signed_by_b({"a": 1}), valid_at_ts=NOW)
    await ring.verify_json_for_server("b.example", signed_by_b({"a": 2}), valid_at_ts=NOW)
    assert len(client.calls) == 1
    # a new keyring (a restart) reads them from the database without asking
    fresh = keyring(database, ScriptedClient(direct({})))
    await fresh.verify_json_for_server("b.example", signed_by_b({"a": 3}), valid_at_ts=NOW)
    [answer] = await fresh.get_key_responses(
        "b.example", [B_KEY.key_id], minimum_valid_until_ts=NOW
    )
    # served as B signed it, co-signed by us
    assert answer["verify_keys"] == {B_KEY.key_id: {"key": B_KEY.verify_key_base64}}
    assert set(answer["signatures"]) == {"b.example", "a.example"}


async def test_concurrent_askers_share_one_fetch(database: Database) -> None:
    client = ScriptedClient(direct(b_response()), delay=0.2)
    ring = keyring(database, client)
    await asyncio.gather(
        *(
            ring.verify_json_for_server("b.example", signed_by_b({"n": n}), valid_at_ts=NOW)
            for n in range(5)
        )
    )
    assert len(client.calls) == 1


class CountingStore(ServerKeyStore):
    """Counts the reads of stored key responses."""

    reads = 0

    async def get_key_responses(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await super().get_key_responses(*args, **kwargs)


async def test_concurrent_checks_share_the_database_reads(database: Database) -> None:
    # a join's send_join answer: a thousand events of one server checked at once
    store = CountingStore(database)
    client = ScriptedClient(direct(b_response()), delay=0.05)
    ring = keyring(database, client, store=store)
    objects = [signed_by_b({"n": n}) for n in range(200)]
    await asyncio.gather(
        *(ring.verify_json_for_server("b.example", o, valid_at_ts=NOW) for o in objects)
    )
    # one read finding nothing, the fetch, one read of what it stored
    assert (len(client.calls), store.reads) == (1, 2)
    # after a restart the keys are in the database only: one read for all
    store = CountingStore(database)
    ring = keyring(database, ScriptedClient(direct({})), store=store)
    await asyncio.gather(
        *(ring.verify_json_for_server("b.example", o, valid_at_ts=NOW) for o in objects)
    )
    assert store.reads == 1
    # a forged one among them is still refused
    forged = signed_by_b({"n": "x"}, B_OLD)
    forged["signatures"]["b.example"][B_KEY.key_id] = forged["signatures"]["b.example"].pop(
        B_OLD.key_id
    )
    with pytest.raises(InvalidSignatureError):
        await ring.verify_json_for_server("b.example", forged, valid_at_ts=NOW)


async def test_a_bad_signature_is_invalid_and_a_missing_one_is_missing(
    database: Database,
) -> None:
    ring = keyring(database, ScriptedClient(direct(b_response())))
    tampered = dict(signed_by_b({"a": 1}), a=2)
    with pytest.raises(InvalidSignatureError):
        await ring.verify_json_for_server("b.example", tampered, valid_at_ts=NOW)
    with pytest.raises(MissingSignatureError):
        await ring.verify_json_for_server("b.example", {"a": 1}, valid_at_ts=NOW)
    # signed by a key B does not publish
    other = ServerSigningKey.from_seed(b"\x20" * 32, "other")
    with pytest.raises(MissingSignatureError):
        await ring.verify_json_for_server("b.example", signed_by_b({}, other), valid_at_ts=NOW)


async def test_old_keys_verify_only_what_was_signed_before_they_expired(
    database: Database,
) -> None:
    ring = keyring(database, ScriptedClient(direct(b_response())))
    old_signed = signed_by_b({"old": True}, B_OLD)
    await ring.verify_json_for_server("b.example", old_signed, valid_at_ts=NOW - 2 * HOUR)
    with pytest.raises(MissingSignatureError):
        await ring.verify_json_for_server("b.example", old_signed, valid_at_ts=NOW)


async def test_a_key_past_its_validity_is_fetched_again(database: Database) -> None:
    now = [NOW]
    responses = [b_response(NOW + HOUR), b_response(NOW + 3 * HOUR)]
    client = ScriptedClient(lambda d, p, b: responses[len(client.calls) - 1])
    ring = keyring(database, client, clock=lambda: now[0])
    await ring.verify_json_for_server("b.example", signed_by_b({}), valid_at_ts=NOW)
    now[0] = NOW + 2 * HOUR
    await ring.verify_json_for_server("b.example", signed_by_b({}), valid_at_ts=now[0])
    assert len(client.calls) == 2
    # with the server answering nothing newer, a signature past validity has no key
    client.handler = direct(b_response(NOW + HOUR))
    with pytest.raises(MissingSignatureError):
        await ring.verify_json_for_server("b.example", signed_by_b({}), valid_at_ts=NOW + 5 * HOUR)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.update(server_name="evil.example"),
        lambda r: r.pop("signatures"),
        lambda r: r.update(valid_until_ts=r["valid_until_ts"] + 1),
    ],
)
async def test_a_tampered_key_response_is_refused_and_not_kept(
    database: Database, change: Callable[[dict[str, Any]], Any]
) -> None:
    response = b_response()
    change(response)
    ring = keyring(database, ScriptedClient(direct(response)))
    with pytest.raises(MissingSignatureError):
        await ring.verify_json_for_server("b.example", signed_by_b({}), valid_at_ts=NOW)
    assert await ServerKeyStore(database).get_key_responses("b.example") == []
    assert await ring.notary_query({"b.example": KeyQuery(frozenset(), None)}) == []


async def test_trusted_key_server_with_keys_must_have_signed(database: Database) -> None:
    notary = TrustedKeyServer("notary.example", {NOTARY_KEY.key_id: NOTARY_KEY.verify_key})
    cosigned = add_notary_signature(b_response(), "notary.example", NOTARY_KEY)
    client = ScriptedClient(unreachable_then_notary([cosigned]))
    ring = keyring(database, client, [notary])
    await ring.verify_json_for_server("b.example", signed_by_b({}), valid_at_ts=NOW)
    rows = await ServerKeyStore(database).get_key_responses("b.example")
    assert {row.from_server for row in rows} == {"notary.example"}

    # not co-signed, or co-signed with another key: refused
    impostor = ServerSigningKey.from_seed(b"\x21" * 32, "n1")
    for answer in (b_response(), add_notary_signature(b_response(), "notary.example", impostor)):
        async with database.transaction() as conn:
            await conn.execute(delete(server_keys_json))
        ring = keyring(database, ScriptedClient(unreachable_then_notary([answer])), [notary])
        with pytest.raises(MissingSignatureError):
            await ring.verify_json_for_server("b.example", signed_by_b({}), valid_at_ts=NOW)


async def test_trusted_key_server_without_keys_is_taken_on_tls(database: Database) -> None:
    # as Synapse: no verify_keys, no notary signature needed; B's own still is
    client = ScriptedClient(unreachable_then_notary([b_response()]))
    ring = keyring(database, client, [TrustedKeyServer("notary.example")])
    await ring.verify_json_for_server("b.example", signed_by_b({}), valid_at_ts=NOW)

    forged = b_response()
    forged["verify_keys"][B_KEY.key_id]["key"] = NOTARY_KEY.verify_key_base64
    client = ScriptedClient(unreachable_then_notary([forged]))
    ring = keyring(database, client, [TrustedKeyServer("notary.example")])
    with pytest.raises(MissingSignatureError):
        await ring.verify_json_for_server(
            "b.example", signed_by_b({}, NOTARY_KEY), valid_at_ts=NOW + 2 * HOUR
        )


async def test_our_own_keys_need_no_fetch(database: Database) -> None:
    ring = keyring(database, None)
    await ring.verify_json_for_server(
        "a.example", sign_json({"x": 1}, "a.example", OURS), valid_at_ts=NOW
    )
    [answer] = await ring.notary_query({"a.example": KeyQuery(frozenset(), NOW + HOUR)})
    assert answer["valid_until_ts"] == NOW + 24 * HOUR
    # nothing to fetch with: unknown servers have no keys
    with pytest.raises(MissingSignatureError):
        await ring.verify_json_for_server("b.example", signed_by_b({}), valid_at_ts=NOW)
