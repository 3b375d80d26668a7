"""Transactions other servers push to us (spec: server-server-api "Transactions", PUT
/send/{txnId}), and what happens to each PDU in them ("Checks performed on receipt of a
PDU"): format, signatures and hash (EventVerifier); its auth events fetched when missing
and the event authorised against them; its prev events fetched with get_missing_events
(a pushed event whose prev events stay missing is refused, as Synapse; the state at the
prev events an event so fetched lacks is asked with /state_ids); authorised against
the state before it (else rejected) and against the room's current state (else
soft-failed); then persisted through the room sender.

A transaction is answered once: the answer is stored per (origin, transaction ID) and
given again to a retry. One bad PDU never fails the transaction: it gets an `error`, except
an event stored as rejected by the auth rules, which was processed and gets `{}` (as Synapse).
PDUs of one room are handled in order, rooms concurrently; then the EDUs go to their
handlers (edus.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from cachetools import TTLCache

from ranvier.clock import now_ms
from ranvier.federation.client import FederationClient
from ranvier.federation.errors import FederationError
from ranvier.metrics import federation as federation_metrics
from ranvier.protocol.auth import AuthError, check_auth, check_auth_events_consistency
from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.protocol.signing import SignatureError
from ranvier.protocol.state_res import resolve_state
from ranvier.protocol.validation import PDUValidationError
from ranvier.services.federation.edus import EduDispatcher
from ranvier.services.federation.event_checks import EventVerifier
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.rooms.sender import FederatedEvent, RoomEventSender
from ranvier.storage import events as event_store
from ranvier.storage import federation_transactions as txn_store
from ranvier.storage import rooms as room_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.state import StateKey, StateMap

logger = logging.getLogger(__name__)

FEDERATION = "/_matrix/federation/v1"
CREATE_KEY = ("m.room.create", "")
# spec: server-server-api "Transactions"
MAX_PDUS = 50
MAX_EDUS = 100
# how many missing prev events to ask the origin for (as Synapse)
MISSING_EVENTS_LIMIT = 10
# as Synapse: an answer is kept a day, longer than any sender retries a transaction
KEEP_ANSWERS_MS = 24 * 3600 * 1000
PRUNE_EVERY_MS = 3600 * 1000
# events fetched one by one for a gap's state, at most, before giving up on the PDU
MAX_FETCHED_FOR_STATE = 500
# how many events one /backfill asks for
BACKFILL_LIMIT = 100
# a gap no server filled is not asked about again for this long (a client paging back
# over it would otherwise ask every server on every short page); at most this many kept
UNFILLED_GAP_RETRY_SECONDS = 3600
UNFILLED_GAPS_KEPT = 10_000


class PduRefused(Exception):
    """The PDU is not accepted; the message goes back in the transaction's answer."""


class PduRejected(PduRefused):
    """The PDU was processed: stored, but rejected by the auth rules. Its answer is `{}`,
    as Synapse answers and other servers (SyTest) expect: the sender has nothing to retry
    or fix, and the rejection shows in the room (no state change, nothing served)."""


def _domain(identifier: str) -> str:
    return identifier.partition(":")[2]


class TransactionService:
    def __init__(
        self,
        db: Database,
        sender: RoomEventSender,
        verifier: EventVerifier,
        acl: ServerAclChecker,
        client: FederationClient | None,
        server_name: str,
        edus: EduDispatcher,
    ) -> None:
        self._db = db
        self._edus = edus
        self._sender = sender
        self._loader = sender.loader
        self._verifier = verifier
        self._acl = acl
        self._client = client
        self._server_name = server_name
        # one processing per transaction; a retry arriving meanwhile waits for its answer
        self._in_flight: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        # one PDU handled at a time per room, whichever transaction it came in (kept: a
        # lock dropped while a waiter is being woken would let a second one in)
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._last_prune_ms = 0
        # backfill points (events citing prev events not held here) that no server filled
        self._unfilled_gaps: TTLCache[str, bool] = TTLCache(
            maxsize=UNFILLED_GAPS_KEPT, ttl=UNFILLED_GAP_RETRY_SECONDS
        )

    async def on_transaction(
        self,
        origin: str,
        transaction_id: str,
        pdus: Sequence[Mapping[str, Any]],
        edus: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """The answer to PUT /send/{txnId} from `origin`: {"pdus": {event_id: {} or
        {"error": ...}}}, the same for a retry as the first time."""
        key = (origin, transaction_id)
        in_flight = self._in_flight.get(key)
        if in_flight is not None:
            return await asyncio.shield(in_flight)
        stored = await txn_store.get_response(self._db, origin, transaction_id)
        if stored is not None:
            return stored
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        federation_metrics.transaction_received(origin, len(pdus), len(edus))
        try:
            answer = {"pdus": await self._process_pdus(origin, pdus)}
            await self._edus.handle(origin, edus)
            now = now_ms()
            await txn_store.insert_response(self._db, origin, transaction_id, answer, now)
            if now - self._last_prune_ms > PRUNE_EVERY_MS:
                self._last_prune_ms = now
                await txn_store.delete_older_than(self._db, now - KEEP_ANSWERS_MS)
            future.set_result(answer)
            return answer
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a retry that was waiting gets it
            raise
        finally:
            del self._in_flight[key]

    async def _process_pdus(
        self, origin: str, pdus: Sequence[Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        by_room: dict[str, list[Mapping[str, Any]]] = {}
        for pdu in pdus:
            room_id = pdu.get("room_id") if isinstance(pdu, Mapping) else None
            if isinstance(room_id, str):
                by_room.setdefault(room_id, []).append(pdu)
        results: dict[str, dict[str, Any]] = {}
        answers = await asyncio.gather(
            *(self._process_room(origin, room_id, items) for room_id, items in by_room.items())
        )
        for answer in answers:
            results.update(answer)
        return results

    async def _process_room(
        self, origin: str, room_id: str, pdus: Sequence[Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        room = await room_store.get_room(self._db, room_id)
        version = None if room is None else KNOWN_ROOM_VERSIONS.get(room.room_version)
        lock = self._room_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            # a run of messages, each on the one before, persisted together (_chained)
            chain: list[FederatedEvent] = []
            for pdu in pdus:
                event_id = _event_id(pdu, version or _likely_version(room_id, pdu))
                if event_id is None:
                    logger.info("Dropping an unreadable PDU from %s for room %s", origin, room_id)
                    continue
                try:
                    if version is None:
                        raise PduRefused(f"Unknown room {room_id}")
                    event = await self._admit(origin, room_id, version, pdu, chain)
                    if event is not None:
                        state_before = await self._chained(room_id, event, chain)
                        if state_before is not None:
                            chain.append(FederatedEvent(event, state_before))
                            continue
                        await self._persist_chain(room_id, version, chain, results)
                        await self._handle_new(origin, room_id, version, event, fetch_missing=True)
                    results[event_id] = {}
                except PduRejected as exc:
                    logger.info("PDU %s from %s rejected: %s", event_id, origin, exc)
                    results[event_id] = {}
                except PduRefused as exc:
                    logger.info("PDU %s from %s not accepted: %s", event_id, origin, exc)
                    results[event_id] = {"error": str(exc)}
                except Exception as exc:
                    logger.exception("Handling PDU %s from %s failed", event_id, origin)
                    results[event_id] = {"error": f"Internal error: {type(exc).__name__}"}
            if version is not None:
                await self._persist_chain(room_id, version, chain, results)
        return results

    async def _persist_chain(
        self,
        room_id: str,
        version: RoomVersion,
        chain: list[FederatedEvent],
        results: dict[str, dict[str, Any]],
    ) -> None:
        """Persist the chain of accepted messages gathered so far in one batch, and
        answer its PDUs."""
        if not chain:
            return
        items = list(chain)
        chain.clear()
        try:
            await self._sender.persist_federated(room_id, version, items)
        except Exception as exc:
            logger.exception("Persisting %d PDUs in %s failed", len(items), room_id)
            answer: dict[str, Any] = {"error": f"Internal error: {type(exc).__name__}"}
        else:
            answer = {}
        for item in items:
            results[item.event.event_id] = dict(answer)

    async def _admit(
        self,
        origin: str,
        room_id: str,
        version: RoomVersion,
        pdu: Mapping[str, Any],
        chain: Sequence[FederatedEvent],
    ) -> Event | None:
        """The PDU as an event to handle, or None when it is here already (in the room's
        DAG, or earlier in this transaction's chain)."""
        if not await self._acl.allows(origin, room_id):
            raise PduRefused("Server is banned from this room by its ACL")
        if not await self._we_are_in(room_id):
            raise PduRefused("This server is not in the room")
        event = await self._check(pdu, version)
        if any(item.event.event_id == event.event_id for item in chain):
            return None
        if await self._loader.state_groups_of([event.event_id]):
            # already in the room's DAG here; a rejected one is answered as the first time
            known = await self._loader.get_event(event.event_id)
            if known is not None and known.rejected_reason is not None:
                raise PduRejected(f"Event rejected by the auth rules: {known.rejected_reason}")
            return None
        return event

    async def _chained(
        self, room_id: str, event: Event, chain: Sequence[FederatedEvent]
    ) -> StateMap | None:
        """The state before `event` when it can join the chain persisted in one batch: it
        is not state, its one prev event is the chain's last or (starting a chain) the
        room's only forward extremity, its auth events are here and allow it, and so does
        the state before it. That state is then the room's current state too, so the
        soft-fail check is the same check. Else None: the chain is persisted and the event
        goes the whole way (_handle_new)."""
        if event.is_state() or len(event.prev_event_ids) != 1:
            return None
        prev_id = event.prev_event_ids[0]
        if chain:
            last = chain[-1]
            if last.event.event_id != prev_id or last.state_before is None:
                return None
            state_before = last.state_before  # a message changes no state
        else:
            head = self._sender.cached_head(room_id)
            if (
                head is None
                or head.unnamed_extremities
                or [prev.event_id for prev in head.extremities] != [prev_id]
            ):
                return None
            state_before = head.state
        cited = await self._loader.get_events(event.auth_event_ids)
        if len(cited) != len(set(event.auth_event_ids)):
            return None
        if await self._auth_problem(event, state_before) is not None:
            return None
        if await self._redacts_another_room(event):
            return None
        return state_before

    async def _check(self, pdu: Mapping[str, Any], version: RoomVersion) -> Event:
        try:
            return await self._verifier.check_pdu(pdu, version)
        except PDUValidationError as exc:
            raise PduRefused(f"Invalid PDU: {exc}") from None
        except SignatureError as exc:
            raise PduRefused(f"Signature check failed: {exc}") from None

    async def _we_are_in(self, room_id: str) -> bool:
        # from the room's state as the sender holds it: no query for the usual PDU
        state = await self._sender.current_state(room_id)
        suffix = ":" + self._server_name
        local = [
            event_id
            for (kind, user_id), event_id in state.items()
            if kind == "m.room.member"
            and user_id.endswith(suffix)
            and _domain(user_id) == self._server_name
        ]
        members = await self._loader.get_events(local)
        return any(member.membership == "join" for member in members.values())

    # -- backfill -------------------------------------------------------------------------

    async def backfill(self, room_id: str, limit: int = BACKFILL_LIMIT) -> bool:
        """spec: "Backfilling and retrieving missing events" - ask the other servers in
        the room, in turn, for the history before the oldest events held here, and store
        what passes the checks as backfilled history. Whether anything new was stored;
        failures are logged, never raised. Gaps no server filled are not asked about
        again for UNFILLED_GAP_RETRY_SECONDS."""
        if self._client is None:
            return False
        room = await room_store.get_room(self._db, room_id)
        version = None if room is None else KNOWN_ROOM_VERSIONS.get(room.room_version)
        if version is None:
            return False
        points = [
            point
            for point in await event_store.get_backfill_points(self._db, room_id)
            if point not in self._unfilled_gaps
        ]
        if not points:
            return False
        if not await self._backfill_from_servers(self._client, room_id, version, points, limit):
            self._unfilled_gaps.update(dict.fromkeys(points, True))
            return False
        return True

    async def _backfill_from_servers(
        self,
        client: FederationClient,
        room_id: str,
        version: RoomVersion,
        points: list[str],
        limit: int,
    ) -> bool:
        """Whether a server in the room, asked in turn (most members first), gave history
        before `points` that was stored."""
        members = await state_store.get_members(self._db, room_id)
        counts = Counter(_domain(member) for member in members)
        counts.pop(self._server_name, None)
        for server in sorted(counts, key=lambda name: (-counts[name], name)):
            try:
                answer = await client.get_json(
                    server,
                    f"{FEDERATION}/backfill/{quote(room_id, safe='')}",
                    query={"v": points, "limit": str(limit)},
                )
            except FederationError as exc:
                logger.info("Backfill of %s from %s failed: %s", room_id, server, exc)
                continue
            pdus = answer.get("pdus") if isinstance(answer, Mapping) else None
            if not isinstance(pdus, list):
                logger.info("Unreadable backfill answer from %s for %s", server, room_id)
                continue
            try:
                if await self.on_backfilled(server, room_id, version, pdus[:limit]):
                    return True
            except Exception:
                logger.exception("Backfill of %s from %s failed", room_id, server)
        return False

    async def on_backfilled(
        self, origin: str, room_id: str, version: RoomVersion, pdus: Sequence[Any]
    ) -> int:
        """Check events pulled from `origin` as new ones are checked (format, signatures
        and hash; auth against their auth events and the state before them, else
        rejected), but not against the current state, and store them as backfilled
        history, oldest first. How many were stored."""
        checked: dict[str, Event] = {}
        for pdu in pdus:
            if not isinstance(pdu, Mapping):
                continue
            try:
                event = await self._check(pdu, version)
            except PduRefused as exc:
                logger.info("A backfilled event from %s was refused: %s", origin, exc)
                continue
            # (from room version 12 a create event names its room by its own hash)
            if event.room_id != room_id:
                continue
            checked[event.event_id] = event
        stored = 0
        lock = self._room_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            for event in sorted(checked.values(), key=lambda e: (e.depth, e.event_id)):
                if await self._loader.state_groups_of([event.event_id]):
                    continue
                try:
                    await self._handle_new(
                        origin, room_id, version, event, fetch_missing=False, backfilled=True
                    )
                except PduRefused as exc:
                    logger.info("Backfilled %s not accepted: %s", event.event_id, exc)
                    continue
                stored += 1
        return stored

    # -- one event ------------------------------------------------------------------------

    async def _handle_new(
        self,
        origin: str,
        room_id: str,
        version: RoomVersion,
        event: Event,
        *,
        fetch_missing: bool,
        backfilled: bool = False,
    ) -> None:
        """Authorise and persist `event`, whose prev events may be unknown here;
        `backfilled` (old history): not checked against the current state."""
        missing = await self._missing_prevs(event)
        if missing and fetch_missing:
            await self._fetch_missing_events(origin, room_id, version, event)
            missing = await self._missing_prevs(event)
            if missing:
                # a pushed event's server has no excuse not to give its prev events, and
                # state taken on its word could become the room's whole state (as
                # Synapse): dropped, so a later event citing it asks for it again
                raise PduRefused(f"Prev events not found: {', '.join(sorted(missing))}")
        prev_states: list[StateMap] = []
        for prev_id in event.prev_event_ids:
            if prev_id in missing:
                prev_states.append(
                    await self._state_after_remote(origin, room_id, version, prev_id)
                )
            else:
                groups = await self._loader.state_groups_of([prev_id])
                prev_states.append(dict(await self._loader.get_state_group(groups[prev_id])))
        if backfilled and not event.prev_event_ids and event.type == "m.room.create":
            state_before: StateMap = {}  # the room's beginning, reached from its end
        else:
            state_before = await self._resolve(version, prev_states)
        await self._ensure_auth_events(origin, room_id, version, event)
        rejected = await self._auth_problem(event, state_before)
        soft_failed = False
        if rejected is None and not backfilled:
            current = await self._sender.current_state(room_id)
            refused_now = await self._auth_against(event, current)
            soft_failed = refused_now is not None or await self._redacts_another_room(event)
        await self._sender.persist_federated(
            room_id,
            version,
            [
                FederatedEvent(
                    event, state_before, soft_failed=soft_failed, rejected_reason=rejected
                )
            ],
            backfilled=backfilled,
        )
        if rejected is not None:
            raise PduRejected(f"Event rejected by the auth rules: {rejected}")
        if soft_failed:
            logger.info("Soft-failed %s: not allowed by the room's current state", event.event_id)

    async def _redacts_another_room(self, event: Event) -> bool:
        """A redaction naming an event of another room held here: kept in the DAG but
        soft-failed, so no timeline shows a redaction reaching into another room (SyTest
        39redactions.pl expects it withheld)."""
        if event.type != "m.room.redaction" or event.redacts is None:
            return False
        target = await self._loader.get_event(event.redacts)
        return target is not None and target.room_id != event.room_id

    async def _missing_prevs(self, event: Event) -> set[str]:
        """Prev events with no state here (unknown, or known only as outliers)."""
        groups = await self._loader.state_groups_of(event.prev_event_ids)
        return {eid for eid in event.prev_event_ids if eid not in groups}

    async def _fetch_missing_events(
        self, origin: str, room_id: str, version: RoomVersion, event: Event
    ) -> None:
        """spec: "Retrieving events" - ask the origin for what lies between our forward
        extremities and `event`, and handle those first, oldest first."""
        if self._client is None:
            return
        extremities = [
            eid for eid, _ in await event_store.get_forward_extremities(self._db, room_id)
        ]
        try:
            answer = await self._client.post_json(
                origin,
                f"{FEDERATION}/get_missing_events/{quote(room_id, safe='')}",
                {
                    "earliest_events": extremities,
                    "latest_events": [event.event_id],
                    "limit": MISSING_EVENTS_LIMIT,
                    "min_depth": 0,
                },
            )
        except FederationError as exc:
            logger.info("get_missing_events from %s failed: %s", origin, exc)
            return
        pdus = answer.get("events") if isinstance(answer, Mapping) else None
        if not isinstance(pdus, list):
            return
        fetched: list[Event] = []
        for pdu in pdus:
            if not isinstance(pdu, Mapping) or pdu.get("room_id") != room_id:
                continue
            try:
                fetched.append(await self._check(pdu, version))
            except PduRefused as exc:
                logger.info("A missing event from %s was refused: %s", origin, exc)
        for missing in sorted(fetched, key=lambda e: (e.depth, e.origin_server_ts)):
            if await self._loader.state_groups_of([missing.event_id]):
                continue
            try:
                await self._handle_new(origin, room_id, version, missing, fetch_missing=False)
            except PduRefused as exc:
                logger.info("Missing event %s not accepted: %s", missing.event_id, exc)

    async def _state_after_remote(
        self, origin: str, room_id: str, version: RoomVersion, prev_id: str
    ) -> StateMap:
        """The state after an event we do not have, as the origin says it is: /state_ids
        gives the state before it, and the event itself is added if it is state. The
        events are fetched and stored as outliers."""
        if self._client is None:
            raise PduRefused(f"Missing prev event {prev_id}")
        try:
            answer = await self._client.get_json(
                origin,
                f"{FEDERATION}/state_ids/{quote(room_id, safe='')}",
                query={"event_id": prev_id},
            )
        except FederationError as exc:
            raise PduRefused(f"Could not get the state at {prev_id}: {exc}") from None
        state_ids = answer.get("pdu_ids") if isinstance(answer, Mapping) else None
        chain_ids = answer.get("auth_chain_ids") if isinstance(answer, Mapping) else None
        if not isinstance(state_ids, list) or not isinstance(chain_ids, list):
            raise PduRefused(f"Unreadable /state_ids answer for {prev_id}")
        wanted = [eid for eid in [*chain_ids, *state_ids, prev_id] if isinstance(eid, str)]
        events = await self._fetch_outliers(origin, room_id, version, wanted)
        state: dict[StateKey, str] = {}
        for event_id in state_ids:
            event = events.get(event_id)
            if event is None or not event.is_state():
                raise PduRefused(f"State event {event_id} at {prev_id} could not be had")
            if event.rejected_reason is None:  # a rejected event is never part of a state
                state[(event.type, event.state_key or "")] = event_id
        prev = events.get(prev_id)
        if prev is None:
            raise PduRefused(f"Prev event {prev_id} could not be had")
        if prev.is_state() and prev.rejected_reason is None:
            state[(prev.type, prev.state_key or "")] = prev_id
        return state

    async def _fetch_outliers(
        self, origin: str, room_id: str, version: RoomVersion, event_ids: Iterable[str]
    ) -> dict[str, Event]:
        """These events, from here or fetched from `origin` one by one, checked, and the
        fetched ones stored as outliers (rejected when their own auth events refuse them)."""
        ids = list(dict.fromkeys(event_ids))
        if len(ids) > MAX_FETCHED_FOR_STATE:
            raise PduRefused("The state to fetch is too large")
        # an event of another room is no part of this one's state or auth, whoever names it
        found = {
            event_id: event
            for event_id, event in (await self._loader.get_events(ids)).items()
            if event.room_id == room_id
        }
        fetched: dict[str, Event] = {}
        for event_id in ids:
            if event_id in found:
                continue
            event = await self._fetch_event(origin, room_id, version, event_id)
            if event is not None:
                fetched[event.event_id] = event
        if fetched:
            ordered = sorted(fetched.values(), key=lambda e: (e.depth, e.event_id))
            known = {**found, **fetched}
            items = []
            for event in ordered:
                reason = self._outlier_problem(event, known)
                event.rejected_reason = reason
                items.append(FederatedEvent(event, None, outlier=True, rejected_reason=reason))
            await self._sender.persist_federated(room_id, version, items)
        return {**found, **fetched}

    def _outlier_problem(self, event: Event, known: Mapping[str, Event]) -> str | None:
        """Why an outlier is rejected: its auth events refuse it (or are not to be had)."""
        cited = [known[eid] for eid in event.auth_event_ids if eid in known]
        if len(cited) != len(set(event.auth_event_ids)):
            return "auth events not found"
        create = next((e for e in known.values() if e.type == "m.room.create"), None)
        try:
            check_auth_events_consistency(event, cited, event.room_version, create)
            state = {(e.type, e.state_key or ""): e for e in cited}
            if create is not None:
                state.setdefault(CREATE_KEY, create)
            check_auth(event, state, event.room_version)
        except AuthError as exc:
            return str(exc)
        return None

    async def _fetch_event(
        self, origin: str, room_id: str, version: RoomVersion, event_id: str
    ) -> Event | None:
        if self._client is None:
            return None
        try:
            answer = await self._client.get_json(
                origin, f"{FEDERATION}/event/{quote(event_id, safe='')}"
            )
        except FederationError as exc:
            logger.info("Fetching %s from %s failed: %s", event_id, origin, exc)
            return None
        pdus = answer.get("pdus") if isinstance(answer, Mapping) else None
        if not isinstance(pdus, list) or len(pdus) != 1 or not isinstance(pdus[0], Mapping):
            return None
        try:
            event = await self._verifier.check_pdu(pdus[0], version)
        except (PDUValidationError, SignatureError) as exc:
            logger.info("Event %s from %s refused: %s", event_id, origin, exc)
            return None
        if event.event_id != event_id or event.room_id != room_id:
            return None
        return event

    async def _ensure_auth_events(
        self, origin: str, room_id: str, version: RoomVersion, event: Event
    ) -> None:
        missing = set(event.auth_event_ids) - set(
            await self._loader.get_events(event.auth_event_ids)
        )
        if missing:
            await self._fetch_outliers(origin, room_id, version, missing)

    # -- auth -----------------------------------------------------------------------------

    async def _auth_problem(self, event: Event, state_before: StateMap) -> str | None:
        """Why the event is rejected: against its own auth events (spec step 4), then
        against the state before it (step 5)."""
        version = event.room_version
        cited = await self._loader.get_events(event.auth_event_ids)
        if len(cited) != len(set(event.auth_event_ids)):
            return "auth events not found"
        create = await self._create_event(state_before, cited.values())
        try:
            check_auth_events_consistency(event, list(cited.values()), version, create)
            own = {(e.type, e.state_key or ""): e for e in cited.values()}
            if create is not None:
                own.setdefault(CREATE_KEY, create)
            check_auth(event, own, version)
        except AuthError as exc:
            return str(exc)
        return await self._auth_against(event, state_before)

    async def _auth_against(self, event: Event, state: StateMap) -> str | None:
        version = event.room_version
        keys = auth_types_for_event(
            version, event.type, event.sender, event.state_key, event.content
        )
        keys.add(CREATE_KEY)
        wanted = {key: state[key] for key in keys if key in state}
        loaded = await self._loader.get_events(wanted.values())
        try:
            check_auth(
                event,
                {key: loaded[eid] for key, eid in wanted.items() if eid in loaded},
                version,
            )
        except AuthError as exc:
            return str(exc)
        return None

    async def _create_event(self, state: StateMap, cited: Iterable[Event]) -> Event | None:
        for event in cited:
            if event.type == "m.room.create" and event.state_key == "":
                return event
        create_id = state.get(CREATE_KEY)
        return None if create_id is None else await self._loader.get_event(create_id)

    async def _resolve(self, version: RoomVersion, states: Sequence[StateMap]) -> StateMap:
        if not states:
            raise PduRefused("The event has no prev events")
        if len(states) == 1:
            return dict(states[0])

        async def fetch(ids: Collection[str]) -> Mapping[str, Event]:
            return await self._loader.get_events(ids)

        async def auth_chain(ids: Collection[str]) -> set[str]:
            return await event_store.get_auth_chain_ids(self._db, ids)

        return await resolve_state(version, states, fetch, auth_chain)


def _likely_version(room_id: str, pdu: Mapping[str, Any]) -> RoomVersion:
    """The room version to name a PDU of a room unknown here by, in the answer. Versions
    1 and 2 carry the ID in the event; from 3 an event's ID is its hash, which the room
    version shapes: a room ID with no server name is version 12's (its create event's
    hash), else the most common, 10, is the best guess."""
    if isinstance(pdu.get("event_id"), str):
        return KNOWN_ROOM_VERSIONS["1"]
    return KNOWN_ROOM_VERSIONS["12" if ":" not in room_id else "10"]


def _event_id(pdu: Mapping[str, Any], version: RoomVersion) -> str | None:
    try:
        return compute_event_id(pdu, version)
    except Exception:
        return None
