"""Other servers' signing keys: found, checked, cached, and used to verify their signatures.

Where a key comes from, in order: our own keys for our own name; the database, while the
stored key is valid for the time asked about; the server itself (`GET
/_matrix/key/v2/server`); then each trusted key server (`POST /_matrix/key/v2/query`), whose
co-signature is checked with the keys the config gives for it.

spec: server-server-api "Retrieving server keys"; rooms/fragments/v5-signing-requirements
(a key verifies signatures made before its valid_until_ts, an old key before its expired_ts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nacl.signing import VerifyKey

from ranvier.clock import now_ms
from ranvier.federation.client import FederationRequests
from ranvier.federation.errors import FederationError
from ranvier.protocol.server_keys import (
    KeyResponseError,
    OldVerifyKey,
    ServerKeys,
    add_notary_signature,
    build_key_response,
    check_notary_signature,
    parse_key_response,
)
from ranvier.protocol.server_names import server_name_problem
from ranvier.protocol.signing import MissingSignatureError, SignatureError, verify_json
from ranvier.protocol.signing_keys import ED25519, ServerSigningKey, decode_verify_key
from ranvier.storage.server_keys import ServerKeyStore, StoredKeyResponse

logger = logging.getLogger(__name__)

SERVER_KEY_PATH = "/_matrix/key/v2/server"
KEY_QUERY_PATH = "/_matrix/key/v2/query"
# a key fetch is a small answer; a server that does not give it in this time is skipped
KEY_FETCH_TIMEOUT_SECONDS = 30.0
# what a key source can answer that only means "not from here": try the next one
FETCH_FAILURES = (FederationError, KeyResponseError, SignatureError)
# servers a notary query fetches at once
NOTARY_CONCURRENT_SERVERS = 10
# verified keys kept in memory, so a busy peer's requests do not each read the database
MEMORY_CACHE_SIZE = 10_000


class SignatureVerifier(Protocol):
    """The keyring, as far as checking a server's signature on a request or an event
    uses it."""

    async def verify_json_for_server(
        self, server_name: str, obj: Mapping[str, Any], *, valid_at_ts: int
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class TrustedKeyServer:
    """A notary from `trusted_key_servers`. Without `verify_keys` its answers are taken on
    the strength of its TLS certificate alone, as Synapse does."""

    server_name: str
    verify_keys: Mapping[str, VerifyKey] | None = None


@dataclass(frozen=True, slots=True)
class ValidKey:
    verify_key: VerifyKey
    # signatures made up to this time verify (ms since the epoch)
    valid_until_ts: int


@dataclass(frozen=True, slots=True)
class KeyQuery:
    """What a notary query asks of one server: `key_ids` (none: all its keys), valid until
    at least `minimum_valid_until_ts` (None: now)."""

    key_ids: frozenset[str]
    minimum_valid_until_ts: int | None


@dataclass(frozen=True, slots=True)
class OwnKeys:
    """This server's keys: the current signing key and those it used before."""

    server_name: str
    signing_key: ServerSigningKey
    old_verify_keys: Mapping[str, OldVerifyKey]
    # how long the keys we publish stay valid (key_refresh_interval)
    refresh_interval_ms: int


class Keyring:
    def __init__(
        self,
        own: OwnKeys,
        store: ServerKeyStore,
        client: FederationRequests | None,
        trusted_key_servers: Sequence[TrustedKeyServer] = (),
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._own = own
        self._store = store
        # None: no outbound federation, so only our own and stored keys are known
        self._client = client
        self._trusted = list(trusted_key_servers)
        self._clock = clock
        self._memory: dict[tuple[str, str], ValidKey] = {}
        # one fetch per server at a time; later askers wait for it and read what it stored
        self._fetching: dict[str, asyncio.Task[None]] = {}
        # one database read per server and keys at a time: the events of a join's answer,
        # checked at once, all ask for the same key before any read has filled the memory
        self._reading: dict[
            tuple[str, frozenset[str], asyncio.Task[None] | None],
            asyncio.Future[dict[str, ValidKey]],
        ] = {}

    @property
    def server_name(self) -> str:
        return self._own.server_name

    def own_key_response(self) -> dict[str, Any]:
        """GET /_matrix/key/v2/server: our keys, valid for key_refresh_interval from now."""
        return build_key_response(
            self._own.server_name,
            self._own.signing_key,
            self._own.old_verify_keys,
            self._clock() + self._own.refresh_interval_ms,
        )

    async def verify_json_for_server(
        self, server_name: str, obj: Mapping[str, Any], *, valid_at_ts: int
    ) -> None:
        """Check that `server_name` signed `obj` with a key valid at `valid_at_ts`.

        Raises MissingSignatureError when `obj` carries no signature of `server_name` made
        with a key we can find valid at that time, InvalidSignatureError when one does not
        verify.
        """
        signatures = obj.get("signatures")
        by_key = signatures.get(server_name) if isinstance(signatures, Mapping) else None
        key_ids = {
            key_id
            for key_id in (by_key if isinstance(by_key, Mapping) else ())
            if isinstance(key_id, str) and key_id.partition(":")[0] == ED25519
        }
        if not key_ids:
            raise MissingSignatureError(f"no ed25519 signature from {server_name}", server_name)
        keys = await self.get_server_verify_keys(
            server_name, key_ids, minimum_valid_until_ts=valid_at_ts
        )
        usable = {
            key_id: key.verify_key
            for key_id, key in keys.items()
            if key.valid_until_ts >= valid_at_ts
        }
        if not usable:
            raise MissingSignatureError(
                f"no key of {server_name} valid at {valid_at_ts} among {sorted(key_ids)}",
                server_name,
            )
        verify_json(obj, server_name, usable)

    async def get_server_verify_keys(
        self, server_name: str, key_ids: Collection[str], *, minimum_valid_until_ts: int
    ) -> dict[str, ValidKey]:
        """The keys of `server_name` among `key_ids` that could be found, each with its
        validity; fetched when none known is valid until `minimum_valid_until_ts`. A key
        found only with a shorter validity is still returned: the caller judges."""
        if server_name == self._own.server_name:
            return {k: v for k, v in self._own_keys().items() if k in key_ids}
        found = {
            key_id: self._memory[(server_name, key_id)]
            for key_id in key_ids
            if (server_name, key_id) in self._memory
        }
        if self._satisfied(found, key_ids, minimum_valid_until_ts):
            return found
        found = await self._shared_stored_keys(server_name, key_ids, None)
        if not self._satisfied(found, key_ids, minimum_valid_until_ts):
            fetch = await self._fetch(server_name, key_ids, minimum_valid_until_ts)
            found = await self._shared_stored_keys(server_name, key_ids, fetch)
        return found

    async def notary_query(self, query: Mapping[str, KeyQuery]) -> list[dict[str, Any]]:
        """POST /_matrix/key/v2/query: every server's key responses, co-signed by us. A
        server that is not a valid server name, or that neither answers nor is cached, is
        left out; servers are fetched a few at a time."""
        limit = asyncio.Semaphore(NOTARY_CONCURRENT_SERVERS)
        now = self._clock()

        async def one(server_name: str, wanted: KeyQuery) -> list[dict[str, Any]]:
            if server_name_problem(server_name) is not None:
                return []
            async with limit:
                return await self.get_key_responses(
                    server_name,
                    wanted.key_ids,
                    minimum_valid_until_ts=(
                        now
                        if wanted.minimum_valid_until_ts is None
                        else wanted.minimum_valid_until_ts
                    ),
                )

        answers = await asyncio.gather(*(one(name, wanted) for name, wanted in query.items()))
        return [response for answer in answers for response in answer]

    async def get_key_responses(
        self, server_name: str, key_ids: Collection[str], *, minimum_valid_until_ts: int
    ) -> list[dict[str, Any]]:
        """The notary's answer for `server_name`: its signed key responses (for `key_ids`, or
        all keys when empty), each co-signed by us. Fetched first when what is stored is not
        valid until `minimum_valid_until_ts`; what is stored is served even if the fetch
        fails, so a server that is down can still be vouched for."""
        if server_name == self._own.server_name:
            return [self.own_key_response()]
        wanted = set(key_ids) or None
        stored = await self._store.get_key_responses(server_name, wanted)
        best = _best_by_key(stored)
        fresh = {
            key_id
            for key_id, row in best.items()
            if row.ts_valid_until_ms >= minimum_valid_until_ts
        }
        if (wanted is None and not fresh) or (wanted is not None and not wanted <= fresh):
            await self._fetch(server_name, wanted or (), minimum_valid_until_ts)
            best = _best_by_key(await self._store.get_key_responses(server_name, wanted))
        responses: list[dict[str, Any]] = []
        for row in best.values():
            if row.key_json not in responses:
                responses.append(row.key_json)
        return [
            add_notary_signature(response, self._own.server_name, self._own.signing_key)
            for response in responses
        ]

    def _own_keys(self) -> dict[str, ValidKey]:
        own = self._own
        keys = {
            key_id: ValidKey(old.verify_key, old.expired_ts)
            for key_id, old in own.old_verify_keys.items()
        }
        keys[own.signing_key.key_id] = ValidKey(
            own.signing_key.verify_key, self._clock() + own.refresh_interval_ms
        )
        return keys

    @staticmethod
    def _satisfied(
        found: Mapping[str, ValidKey], key_ids: Collection[str], minimum_valid_until_ts: int
    ) -> bool:
        # one usable key among those asked for is enough to check a signature
        return any(key.valid_until_ts >= minimum_valid_until_ts for key in found.values()) or (
            not key_ids
        )

    async def _shared_stored_keys(
        self, server_name: str, key_ids: Collection[str], after: asyncio.Task[None] | None
    ) -> dict[str, ValidKey]:
        """_stored_keys, joining a read of the same keys already under way: the one begun
        after the same fetch `after` (None: no fetch), so no read that began before a fetch
        stored its keys stands for one after it."""
        key = (server_name, frozenset(key_ids), after)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._stored_keys(server_name, key_ids))
            self._reading[key] = reading
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        # shielded: one asker giving up does not cancel the read the others wait for
        return dict(await asyncio.shield(reading))

    async def _stored_keys(self, server_name: str, key_ids: Collection[str]) -> dict[str, ValidKey]:
        found: dict[str, ValidKey] = {}
        for key_id, row in _best_by_key(
            await self._store.get_key_responses(server_name, key_ids)
        ).items():
            key = _key_in_response(row.key_json, key_id)
            if key is None:
                continue
            found[key_id] = ValidKey(key, row.ts_valid_until_ms)
            self._remember(server_name, key_id, found[key_id])
        return found

    def _remember(self, server_name: str, key_id: str, key: ValidKey) -> None:
        if len(self._memory) >= MEMORY_CACHE_SIZE:
            self._memory.clear()
        self._memory[(server_name, key_id)] = key

    async def _fetch(
        self, server_name: str, key_ids: Collection[str], minimum_valid_until_ts: int
    ) -> asyncio.Task[None] | None:
        """Fetch and store `server_name`'s keys; one fetch per server at a time, shared by
        whoever asks meanwhile. The fetch waited for (None: no client to fetch with)."""
        if self._client is None:
            return None
        task = self._fetching.get(server_name)
        if task is None:
            task = asyncio.create_task(
                self._fetch_from_sources(server_name, set(key_ids), minimum_valid_until_ts)
            )
            self._fetching[server_name] = task
            task.add_done_callback(lambda _: self._fetching.pop(server_name, None))
        # shielded: one asker giving up does not cancel the fetch the others wait for
        await asyncio.shield(task)
        return task

    async def _fetch_from_sources(
        self, server_name: str, key_ids: set[str], minimum_valid_until_ts: int
    ) -> None:
        try:
            keys = await self._fetch_direct(server_name, key_ids)
        except FETCH_FAILURES as exc:
            logger.warning("Fetching keys from %s failed: %s", server_name, exc)
        except Exception:
            logger.exception("Fetching keys from %s failed", server_name)
        else:
            if _covers(keys, key_ids, minimum_valid_until_ts):
                return
        for notary in self._trusted:
            try:
                keys = await self._fetch_via_notary(
                    notary, server_name, key_ids, minimum_valid_until_ts
                )
            except FETCH_FAILURES as exc:
                logger.warning(
                    "Fetching keys of %s from key server %s failed: %s",
                    server_name,
                    notary.server_name,
                    exc,
                )
                continue
            except Exception:
                logger.exception(
                    "Fetching keys of %s from key server %s failed", server_name, notary.server_name
                )
                continue
            if _covers(keys, key_ids, minimum_valid_until_ts):
                return

    async def _fetch_direct(self, server_name: str, key_ids: set[str]) -> ServerKeys | None:
        assert self._client is not None
        response = await self._client.get_json(
            server_name,
            SERVER_KEY_PATH,
            authenticated=False,
            timeout=KEY_FETCH_TIMEOUT_SECONDS,
            ignore_backoff=True,
        )
        keys = parse_key_response(
            response, server_name, received_ts=self._clock(), requested_key_ids=key_ids
        )
        await self._keep(keys, from_server=server_name)
        return keys

    async def _fetch_via_notary(
        self,
        notary: TrustedKeyServer,
        server_name: str,
        key_ids: set[str],
        minimum_valid_until_ts: int,
    ) -> ServerKeys | None:
        assert self._client is not None
        criteria = {"minimum_valid_until_ts": minimum_valid_until_ts}
        response = await self._client.post_json(
            notary.server_name,
            KEY_QUERY_PATH,
            {"server_keys": {server_name: {key_id: criteria for key_id in sorted(key_ids)}}},
            authenticated=False,
            timeout=KEY_FETCH_TIMEOUT_SECONDS,
            ignore_backoff=True,
        )
        answers = response.get("server_keys") if isinstance(response, Mapping) else None
        if not isinstance(answers, list):
            raise KeyResponseError(f"{notary.server_name} answered without a server_keys list")
        merged: ServerKeys | None = None
        for answer in answers:
            if not isinstance(answer, Mapping) or answer.get("server_name") != server_name:
                continue
            try:
                if notary.verify_keys is not None:
                    check_notary_signature(answer, notary.server_name, notary.verify_keys)
                keys = parse_key_response(answer, server_name, received_ts=self._clock())
            except (KeyResponseError, SignatureError) as exc:
                logger.warning(
                    "Key server %s gave keys of %s that do not check out: %s",
                    notary.server_name,
                    server_name,
                    exc,
                )
                continue
            await self._keep(keys, from_server=notary.server_name)
            if merged is None or keys.valid_until_ts > merged.valid_until_ts:
                merged = keys
        return merged

    async def _keep(self, keys: ServerKeys, *, from_server: str) -> None:
        validity = {key_id: keys.valid_until_ts for key_id in keys.verify_keys}
        for key_id, old in keys.old_verify_keys.items():
            validity.setdefault(key_id, old.expired_ts)
        await self._store.store_key_response(
            keys.server_name, from_server, keys.response, validity, self._clock()
        )
        for key_id in validity:
            self._memory.pop((keys.server_name, key_id), None)


def _covers(keys: ServerKeys | None, key_ids: set[str], minimum_valid_until_ts: int) -> bool:
    if keys is None:
        return False
    if not key_ids:
        return keys.valid_until_ts >= minimum_valid_until_ts
    for key_id in key_ids:
        found = keys.key_validity(key_id)
        if found is not None and found[1] >= minimum_valid_until_ts:
            return True
    return False


def _best_by_key(rows: Sequence[StoredKeyResponse]) -> dict[str, StoredKeyResponse]:
    """For each key, the stored answer that keeps it valid longest (the store orders them)."""
    best: dict[str, StoredKeyResponse] = {}
    for row in rows:
        best.setdefault(row.key_id, row)
    return best


def _key_in_response(response: Mapping[str, Any], key_id: str) -> VerifyKey | None:
    """The key `key_id` as a stored (already checked) response publishes it."""
    for section in ("verify_keys", "old_verify_keys"):
        entries = response.get(section)
        entry = entries.get(key_id) if isinstance(entries, Mapping) else None
        if isinstance(entry, Mapping) and isinstance(entry.get("key"), str):
            try:
                return decode_verify_key(entry["key"])
            except ValueError:
                return None
    return None
