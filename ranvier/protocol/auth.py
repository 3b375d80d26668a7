"""The authorisation rules of every room version.

`check_auth` decides whether an event is allowed given the state it is checked against (its
auth events, the state before it, or the current state - the caller chooses). A refusal raises
`AuthError` naming the rule as numbered in that room version's page, e.g. "rooms/v10 rule 4.3.2".

spec: content/rooms/fragments/v1-auth-rules.md, v3-auth-rules.md, v8-auth-rules.md and the
auth rules sections of rooms/v6, v7, v10, v11, v12.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import nacl.exceptions
import nacl.signing
from unpaddedbase64 import decode_base64

from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.canonical_json import encode_canonical_json
from ranvier.protocol.events import Event
from ranvier.protocol.power_levels import (
    SCALAR_KEYS,
    Level,
    PowerLevels,
    is_valid_user_id,
    parse_level,
    power_levels_content_errors,
    room_creators,
)
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, Event]
# Whether an event carries a valid signature of a server (for join_authorised_via_users_server).
SignatureChecker = Callable[[Event, str], bool]

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
JOIN_RULES_KEY: StateKey = ("m.room.join_rules", "")


class AuthError(Exception):
    """An event is not allowed by the auth rules; `rule` is its number in the room version page."""

    def __init__(self, room_version: RoomVersion, rule: str, reason: str) -> None:
        self.room_version = room_version
        self.rule = rule
        self.reason = reason
        super().__init__(f"rooms/v{room_version.identifier} rule {rule}: {reason}")


def _numbering(rv: RoomVersion) -> dict[str, str]:
    """Rule numbers as each room version's page numbers them, keyed by a stable name."""
    n: dict[str, str] = {}
    n["create"] = "1"
    n["create.prev_events"] = "1.1"
    n["create.room_id"] = "1.2"
    n["create.room_version"] = "1.3"
    # v1-v10: `creator` required; v11: nothing; v12: additional_creators checked
    n["create.content"] = "1.4"
    top = 2
    if rv.room_id_from_create_event:
        n["room_id_is_create"] = "2"
        top = 3
    auth = str(top)
    n["auth_events.duplicate"] = f"{auth}.1"
    n["auth_events.selection"] = f"{auth}.2"
    n["auth_events.rejected"] = f"{auth}.3"
    n["auth_events.no_create"] = f"{auth}.4"
    # spec: rooms/v12 keeps the number 3.5 although 3.4 is gone
    n["auth_events.room_id"] = f"{auth}.5"
    top += 1
    n["federate"] = str(top)
    top += 1
    if rv.special_case_aliases_auth:
        n["aliases.state_key"] = f"{top}.1"
        n["aliases.domain"] = f"{top}.2"
        n["aliases"] = f"{top}.3"
        top += 1
    m = str(top)
    n["member.shape"] = f"{m}.1"
    sub = 2
    if rv.restricted_join_rule:
        n["member.via_signed"] = f"{m}.2.1"
        sub = 3
    join = f"{m}.{sub}"
    for i, name in enumerate(("first", "sender", "banned", "invite"), start=1):
        n[f"join.{name}"] = f"{join}.{i}"
    j = 5
    if rv.restricted_join_rule:
        n["join.restricted_member"] = f"{join}.5.1"
        n["join.restricted_via"] = f"{join}.5.2"
        n["join.restricted"] = f"{join}.5.3"
        j = 6
    n["join.public"] = f"{join}.{j}"
    n["join.otherwise"] = f"{join}.{j + 1}"
    invite = f"{m}.{sub + 1}"
    tpi_names = ("banned", "signed", "mxid_token", "mxid", "event", "sender", "signature", "other")
    for i, name in enumerate(tpi_names, start=1):
        n[f"invite.tpi.{name}"] = f"{invite}.1.{i}"
    for i, name in enumerate(("sender", "target", "level", "otherwise"), start=2):
        n[f"invite.{name}"] = f"{invite}.{i}"
    leave = f"{m}.{sub + 2}"
    for i, name in enumerate(("self", "sender", "banned", "kick", "otherwise"), start=1):
        n[f"leave.{name}"] = f"{leave}.{i}"
    ban = f"{m}.{sub + 3}"
    for i, name in enumerate(("sender", "level", "otherwise"), start=1):
        n[f"ban.{name}"] = f"{ban}.{i}"
    last = sub + 4
    if rv.knock_join_rule:
        knock = f"{m}.{last}"
        for i, name in enumerate(("join_rule", "sender", "membership", "otherwise"), start=1):
            n[f"knock.{name}"] = f"{knock}.{i}"
        last += 1
    n["member.unknown"] = f"{m}.{last}"
    n["sender_joined"] = str(top + 1)
    n["third_party_invite"] = f"{top + 2}.1"
    n["send_level"] = str(top + 3)
    n["user_state_key"] = str(top + 4)
    pl = str(top + 5)
    names = ["users"]
    if rv.enforce_int_power_levels:
        names = ["ints", "maps", "users"]
    if rv.privileged_creators:
        names.append("creators")
    names += ["no_previous", "scalars", "events_removed", "events_added"]
    names += ["users_removed", "users_added"]
    for i, name in enumerate(names, start=1):
        n[f"pl.{name}"] = f"{pl}.{i}"
    # spec: rooms/v1 rule 11 - only the event formats with server-named event IDs
    n["redaction"] = str(top + 6)
    return n


_NUMBERING: dict[str, dict[str, str]] = {
    rv.identifier: _numbering(rv) for rv in KNOWN_ROOM_VERSIONS.values()
}


class _Checker:
    """One auth check: the event, its state, and helpers that fail with the right rule number."""

    def __init__(
        self,
        event: Event,
        state: StateMap,
        room_version: RoomVersion,
        signature_checker: SignatureChecker,
    ) -> None:
        self.event = event
        self.state = state
        self.rv = room_version
        self.numbers = _NUMBERING.get(room_version.identifier) or _numbering(room_version)
        self.signature_checker = signature_checker
        self.create = state.get(CREATE_KEY)
        self.levels = PowerLevels.from_events(
            room_version, self.create, state.get(POWER_LEVELS_KEY)
        )

    def fail(self, rule: str, reason: str) -> AuthError:
        return AuthError(self.rv, self.numbers[rule], reason)

    def membership_of(self, user_id: str) -> str | None:
        member = self.state.get(("m.room.member", user_id))
        return None if member is None else member.membership

    def level_of(self, user_id: str) -> Level:
        return self.levels.user_level(user_id)

    def join_rule(self) -> str | None:
        event = self.state.get(JOIN_RULES_KEY)
        if event is None:
            return None
        rule = event.content.get("join_rule")
        return rule if isinstance(rule, str) else None

    # --- rule 1 and 2/3: the create event and the auth events themselves

    def check_create(self) -> None:
        event, rv = self.event, self.rv
        if event.prev_event_ids:
            raise self.fail("create.prev_events", "the create event has prev_events")
        if rv.room_id_from_create_event:
            # spec: rooms/v12 rule 1.2 - the room ID is derived from the create event
            if "room_id" in event.pdu:
                raise self.fail("create.room_id", "the create event has a room_id")
        elif _domain(event.room_id) != _domain(event.sender):
            raise self.fail("create.room_id", "room_id and sender are on different servers")
        version = event.content.get("room_version", "1")
        if not isinstance(version, str) or version not in KNOWN_ROOM_VERSIONS:
            raise self.fail("create.room_version", f"unknown room version {version!r}")
        if not rv.implicit_room_creator and "creator" not in event.content:
            raise self.fail("create.content", "the create event has no `creator`")
        if rv.privileged_creators and "additional_creators" in event.content:
            extra = event.content["additional_creators"]
            if not isinstance(extra, list) or not all(is_valid_user_id(u) for u in extra):
                raise self.fail("create.content", "`additional_creators` is not a list of user IDs")

    def check_state_consistency(self) -> None:
        if self.create is None:
            rule = (
                "room_id_is_create"
                if self.rv.room_id_from_create_event
                else "auth_events.no_create"
            )
            raise self.fail(rule, "no m.room.create event among the auth events")
        if self.rv.room_id_from_create_event:
            # spec: rooms/v12 rule 2 - room_id is the create event's ID with `!` for `$`
            if self.event.room_id != "!" + self.create.event_id[1:]:
                raise self.fail("room_id_is_create", "room_id is not the create event's ID")
            if self.create.rejected_reason is not None:
                raise self.fail("room_id_is_create", "the create event was rejected")
        # only the entries the rules can consult: a full room state may be passed in
        wanted = auth_types_for_event(
            self.rv, self.event.type, self.event.sender, self.event.state_key, self.event.content
        )
        wanted.add(CREATE_KEY)
        for key in wanted:
            auth_event = self.state.get(key)
            if auth_event is None:
                continue
            if auth_event.rejected_reason is not None:
                raise self.fail("auth_events.rejected", f"{auth_event.event_id} was rejected")
            if auth_event.room_id != self.event.room_id:
                raise self.fail(
                    "auth_events.room_id", f"{auth_event.event_id} belongs to another room"
                )

    def check_federate(self) -> None:
        assert self.create is not None
        if self.create.content.get("m.federate", True) is False and _domain(
            self.event.sender
        ) != _domain(self.create.sender):
            raise self.fail("federate", "the room does not federate and sender is remote")

    # --- member events

    def check_member(self) -> None:
        event = self.event
        target = event.state_key
        membership = event.membership
        if target is None or membership is None:
            raise self.fail("member.shape", "no state_key or no membership")
        via = event.content.get("join_authorised_via_users_server")
        if (
            self.rv.restricted_join_rule
            and via is not None
            and (not isinstance(via, str) or not self.signature_checker(event, _domain(via)))
        ):
            raise self.fail(
                "member.via_signed",
                "not signed by the server of join_authorised_via_users_server",
            )
        if membership == "join":
            self.check_join(target)
        elif membership == "invite":
            self.check_invite(target)
        elif membership == "leave":
            self.check_leave(target)
        elif membership == "ban":
            self.check_ban(target)
        elif membership == "knock" and self.rv.knock_join_rule:
            self.check_knock(target)
        else:
            raise self.fail("member.unknown", f"unknown membership {membership!r}")

    def check_join(self, target: str) -> None:
        event, rv = self.event, self.rv
        assert self.create is not None
        prev = event.prev_event_ids
        # spec: rooms/v12 names "the sender of the m.room.create"; v1-v10 the `creator` property
        creator: Any = (
            self.create.sender if rv.implicit_room_creator else self.create.content.get("creator")
        )
        if len(prev) == 1 and prev[0] == self.create.event_id and target == creator:
            return
        if event.sender != target:
            raise self.fail("join.sender", "sender does not match state_key")
        current = self.membership_of(target)
        if current == "ban":
            raise self.fail("join.banned", "sender is banned")
        rule = self.join_rule()
        invite_rules = {"invite", "knock"} if rv.knock_join_rule else {"invite"}
        if rule in invite_rules:
            if current in ("invite", "join"):
                return
            raise self.fail("join.invite", f"join rule is {rule} and sender was not invited")
        restricted_rules = set()
        if rv.restricted_join_rule:
            restricted_rules.add("restricted")
        if rv.knock_restricted_join_rule:
            restricted_rules.add("knock_restricted")
        if rule in restricted_rules:
            if current in ("join", "invite"):
                return
            via = event.content.get("join_authorised_via_users_server")
            if (
                not isinstance(via, str)
                or self.membership_of(via) != "join"
                or self.level_of(via) < self.levels.invite
            ):
                raise self.fail(
                    "join.restricted_via",
                    "join_authorised_via_users_server is not a joined user able to invite",
                )
            return
        if rule == "public":
            return
        raise self.fail("join.otherwise", f"join rule {rule!r} does not allow joining")

    def check_invite(self, target: str) -> None:
        event = self.event
        if "third_party_invite" in event.content:
            self.check_third_party_invite(target)
            return
        if self.membership_of(event.sender) != "join":
            raise self.fail("invite.sender", "sender is not joined to the room")
        if self.membership_of(target) in ("join", "ban"):
            raise self.fail("invite.target", "target is joined or banned")
        if self.level_of(event.sender) >= self.levels.invite:
            return
        raise self.fail("invite.otherwise", "sender's power level is below the invite level")

    def check_third_party_invite(self, target: str) -> None:
        event = self.event
        if self.membership_of(target) == "ban":
            raise self.fail("invite.tpi.banned", "target is banned")
        invite = event.content["third_party_invite"]
        signed = invite.get("signed") if isinstance(invite, Mapping) else None
        if not isinstance(signed, Mapping):
            raise self.fail("invite.tpi.signed", "third_party_invite has no `signed`")
        mxid, token = signed.get("mxid"), signed.get("token")
        if not isinstance(mxid, str) or not isinstance(token, str):
            raise self.fail("invite.tpi.mxid_token", "`signed` lacks mxid or token")
        if mxid != target:
            raise self.fail("invite.tpi.mxid", "mxid does not match state_key")
        invite_event = self.state.get(("m.room.third_party_invite", token))
        if invite_event is None:
            raise self.fail("invite.tpi.event", "no m.room.third_party_invite for the token")
        if invite_event.sender != event.sender:
            raise self.fail("invite.tpi.sender", "sender did not send the third party invite")
        if third_party_keys_that_signed(signed, invite_event.content):
            return
        raise self.fail("invite.tpi.other", "no signature in `signed` matches a public key")

    def check_leave(self, target: str) -> None:
        event = self.event
        if event.sender == target:
            allowed = {"invite", "join", "knock"} if self.rv.knock_join_rule else {"invite", "join"}
            if self.membership_of(target) in allowed:
                return
            raise self.fail("leave.self", "sender is not invited, joined or knocking")
        if self.membership_of(event.sender) != "join":
            raise self.fail("leave.sender", "sender is not joined to the room")
        sender_level = self.level_of(event.sender)
        if self.membership_of(target) == "ban" and sender_level < self.levels.ban:
            raise self.fail("leave.banned", "sender's power level is below the ban level")
        if sender_level >= self.levels.kick and self.level_of(target) < sender_level:
            return
        raise self.fail("leave.otherwise", "sender may not kick the target")

    def check_ban(self, target: str) -> None:
        event = self.event
        if self.membership_of(event.sender) != "join":
            raise self.fail("ban.sender", "sender is not joined to the room")
        sender_level = self.level_of(event.sender)
        if sender_level >= self.levels.ban and self.level_of(target) < sender_level:
            return
        raise self.fail("ban.otherwise", "sender may not ban the target")

    def check_knock(self, target: str) -> None:
        event = self.event
        rules = {"knock", "knock_restricted"} if self.rv.knock_restricted_join_rule else {"knock"}
        if self.join_rule() not in rules:
            raise self.fail("knock.join_rule", "the join rule does not allow knocking")
        if event.sender != target:
            raise self.fail("knock.sender", "sender does not match state_key")
        if self.membership_of(event.sender) not in ("ban", "invite", "join"):
            return
        raise self.fail("knock.otherwise", "sender is banned, invited or joined")

    # --- power levels

    def check_power_levels(self) -> None:
        rv, event = self.rv, self.event
        content = event.content
        for check, reason in power_levels_content_errors(rv, content):
            raise self.fail(f"pl.{check}", reason)
        if rv.privileged_creators:
            users = content.get("users")
            creators = room_creators(rv, self.create)
            if isinstance(users, Mapping) and creators.intersection(users):
                raise self.fail("pl.creators", "room creators may not be listed in `users`")
        previous = self.state.get(POWER_LEVELS_KEY)
        if previous is None:
            return
        old = previous.content
        sender_level = self.level_of(event.sender)
        for key in SCALAR_KEYS:
            before, after = _level_in(old, key, rv), _level_in(content, key, rv)
            if before == after:
                continue
            if key in content and after is None:
                raise self.fail("pl.scalars", f"`{key}` is not an integer")
            if before is not None and before > sender_level:
                raise self.fail("pl.scalars", f"current `{key}` is above the sender's level")
            if after is not None and after > sender_level:
                raise self.fail("pl.scalars", f"new `{key}` is above the sender's level")
        maps = ["events"]
        if rv.limit_notifications_power_levels:
            maps.append("notifications")
        for key in maps:
            before_map, after_map = _levels_in(old, key, rv), _levels_in(content, key, rv)
            for name, level in before_map.items():
                if after_map.get(name) != level and level > sender_level:
                    raise self.fail(
                        "pl.events_removed", f"`{key}.{name}` is above the sender's level"
                    )
            for name, level in after_map.items():
                if before_map.get(name) != level and level > sender_level:
                    raise self.fail(
                        "pl.events_added", f"new `{key}.{name}` is above the sender's level"
                    )
        before_users, after_users = _levels_in(old, "users", rv), _levels_in(content, "users", rv)
        for user_id, level in before_users.items():
            if user_id == event.sender or after_users.get(user_id) == level:
                continue
            if level >= sender_level:
                raise self.fail("pl.users_removed", f"{user_id}'s level is not below the sender's")
        for user_id, level in after_users.items():
            if before_users.get(user_id) != level and level > sender_level:
                raise self.fail("pl.users_added", f"{user_id}'s new level is above the sender's")

    # --- everything else

    def check(self) -> None:
        event, rv = self.event, self.rv
        if event.type == "m.room.create" and event.state_key == "":
            self.check_create()
            return
        self.check_state_consistency()
        self.check_federate()
        if rv.special_case_aliases_auth and event.type == "m.room.aliases":
            # spec: rooms/v1 rule 4 - servers publish their own aliases without membership
            if event.state_key is None:
                raise self.fail("aliases.state_key", "m.room.aliases has no state_key")
            if event.state_key != _domain(event.sender):
                raise self.fail("aliases.domain", "state_key is not the sender's server")
            return
        if event.type == "m.room.member":
            self.check_member()
            return
        if self.membership_of(event.sender) != "join":
            raise self.fail("sender_joined", "sender is not joined to the room")
        sender_level = self.level_of(event.sender)
        if event.type == "m.room.third_party_invite":
            if sender_level >= self.levels.invite:
                return
            raise self.fail("third_party_invite", "sender's level is below the invite level")
        required = self.levels.send_level(event.type, event.is_state())
        if required > sender_level:
            raise self.fail("send_level", f"sending {event.type} needs power level {required}")
        key = event.state_key
        if key is not None and key.startswith("@") and key != event.sender:
            raise self.fail("user_state_key", "state_key names another user")
        if event.type == "m.room.power_levels":
            self.check_power_levels()
            return
        if event.type == "m.room.redaction" and rv.event_format is EventFormat.V1:
            # spec: rooms/v1 rule 11 - v1/v2 event IDs name their server, so the domain test
            # is possible; later versions leave redaction checks to "handling redactions"
            if sender_level >= self.levels.redact:
                return
            redacts = event.redacts
            if redacts is not None and _domain(redacts) == _domain(event.event_id):
                return
            raise self.fail("redaction", "sender may not redact other servers' events")


def check_auth(
    event: Event,
    auth_events: StateMap,
    room_version: RoomVersion,
    *,
    signature_checker: SignatureChecker | None = None,
) -> None:
    """Raise `AuthError` unless the auth rules of `room_version` allow `event` in this state.

    `auth_events` maps (type, state_key) to the events the check runs against: the event's own
    auth events, or the room state before it. It must include the create event, also in room
    version 12 where events do not cite it. `signature_checker(event, server_name)` says whether
    the event carries a valid signature of that server (only used for
    `join_authorised_via_users_server`); by default the signature's presence is checked, on
    the assumption that signatures were verified on receipt.
    """
    _Checker(event, auth_events, room_version, signature_checker or _has_signature).check()


def check_auth_events_consistency(
    event: Event,
    auth_events: Sequence[Event],
    room_version: RoomVersion,
    create_event: Event | None = None,
) -> None:
    """The rules about an event's cited `auth_events` list itself (rooms/v10 rule 2, v12 rule 3).

    Checks duplicates, entries the auth events selection would not pick, rejected entries, a
    missing create event (before v12), and room IDs. In room version 12, pass the room's create
    event as `create_event` to check that the room ID names an accepted create event (rule 2).
    """
    numbers = _NUMBERING[room_version.identifier]

    def fail(rule: str, reason: str) -> AuthError:
        return AuthError(room_version, numbers[rule], reason)

    if event.type == "m.room.create" and event.state_key == "":
        return
    if room_version.room_id_from_create_event and create_event is not None:
        if event.room_id != "!" + create_event.event_id[1:] or create_event.type != "m.room.create":
            raise fail("room_id_is_create", "room_id is not the create event's ID")
        if create_event.rejected_reason is not None:
            raise fail("room_id_is_create", "the create event was rejected")
    allowed = auth_types_for_event(
        room_version, event.type, event.sender, event.state_key, event.content
    )
    seen: set[StateKey] = set()
    for auth_event in auth_events:
        if auth_event.state_key is None:
            raise fail("auth_events.selection", f"{auth_event.event_id} is not a state event")
        key = (auth_event.type, auth_event.state_key)
        if key in seen:
            raise fail("auth_events.duplicate", f"two auth events for {key}")
        seen.add(key)
        if key not in allowed:
            raise fail("auth_events.selection", f"{key} is not selected for this event")
        if auth_event.rejected_reason is not None:
            raise fail("auth_events.rejected", f"{auth_event.event_id} was rejected")
        if auth_event.room_id != event.room_id:
            raise fail("auth_events.room_id", f"{auth_event.event_id} belongs to another room")
    if not room_version.room_id_from_create_event and CREATE_KEY not in seen:
        raise fail("auth_events.no_create", "no m.room.create event among the auth events")


def _domain(identifier: str) -> str:
    """The server part of a user, room or v1 event ID (after the first colon)."""
    return identifier.partition(":")[2]


def _has_signature(event: Event, server_name: str) -> bool:
    signatures = event.pdu.get("signatures")
    return isinstance(signatures, Mapping) and bool(signatures.get(server_name))


def _level_in(content: Mapping[str, Any], key: str, rv: RoomVersion) -> int | None:
    value = content.get(key)
    return None if value is None else parse_level(value, rv)


def _levels_in(content: Mapping[str, Any], key: str, rv: RoomVersion) -> dict[str, int]:
    value = content.get(key)
    if not isinstance(value, Mapping):
        return {}
    levels: dict[str, int] = {}
    for name, raw in value.items():
        parsed = parse_level(raw, rv)
        if parsed is not None:
            levels[name] = parsed
    return levels


def third_party_keys_that_signed(
    signed: Mapping[str, Any], invite_content: Mapping[str, Any]
) -> list[tuple[str, str | None]]:
    """spec: rooms/v1 rule 5.3.1.7 - the keys of the invite event (public key, its
    key_validity_url if given) by which some signature in `signed` is made; the rule
    holds when there is one."""
    keys: list[tuple[str, str | None]] = []
    if isinstance(invite_content.get("public_key"), str):
        url = invite_content.get("key_validity_url")
        keys.append((invite_content["public_key"], url if isinstance(url, str) else None))
    public_keys = invite_content.get("public_keys")
    if isinstance(public_keys, list):
        for entry in public_keys:
            if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
                url = entry.get("key_validity_url")
                keys.append((entry["public_key"], url if isinstance(url, str) else None))
    signatures = signed.get("signatures")
    if not keys or not isinstance(signatures, Mapping):
        return []
    # the signed JSON is the object without its signatures, as for any signed JSON object
    message = encode_canonical_json(
        {k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}
    )
    found: list[tuple[str, str | None]] = []
    for by_key in signatures.values():
        if not isinstance(by_key, Mapping):
            continue
        for signature in by_key.values():
            if not isinstance(signature, str):
                continue
            for key in keys:
                if key not in found and _verify_ed25519(key[0], message, signature):
                    found.append(key)
    return found


def _verify_ed25519(public_key: str, message: bytes, signature: str) -> bool:
    try:
        verify_key = nacl.signing.VerifyKey(decode_base64(public_key))
        verify_key.verify(message, decode_base64(signature))
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True
