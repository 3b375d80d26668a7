"""Invites by third-party identifier (spec: client-server-api "Third-party invites",
`POST /rooms/{roomId}/invite` with id_server, id_access_token, medium and address).

The address is looked up at the identity server (hashed); a Matrix user bound to it is
invited as any user would be. Otherwise the invite is stored at the identity server, which
mails the address, and an `m.room.third_party_invite` event carrying the identity server's
public keys goes into the room, for the invitee to redeem once they bind the address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.auth import third_party_keys_that_signed
from ranvier.protocol.event_builder import EventTemplate
from ranvier.requester import UserRequester
from ranvier.services.identity_server import (
    IdentityServerClient,
    IdentityServerError,
    check_id_server,
)
from ranvier.services.rooms.client_sends import EventSendingService
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.membership import MembershipService
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

logger = logging.getLogger(__name__)

THIRD_PARTY_INVITE = "m.room.third_party_invite"
# what /store-invite takes from the room's state: (request key, (event type, content key))
_ROOM_FIELDS = {
    "room_name": ("m.room.name", "name"),
    "room_alias": ("m.room.canonical_alias", "alias"),
    "room_avatar_url": ("m.room.avatar", "url"),
    "room_join_rules": ("m.room.join_rules", "join_rule"),
}


@dataclass(frozen=True)
class BoundInvite:
    """One invite an identity server hands over at /3pid/onbind."""

    mxid: str
    room_id: str
    sender: str
    # {mxid, token, signatures}: the identity server's proof, checked by the auth rules
    signed: dict[str, Any]


@dataclass(frozen=True)
class ThreepidBinding:
    medium: str
    address: str
    mxid: str
    invites: list[BoundInvite]


class ThirdPartyInvites:
    def __init__(
        self,
        db: Database,
        client: IdentityServerClient,
        membership: MembershipService,
        sending: EventSendingService,
        loader: EventLoader,
        server_name: str,
        web_client_location: str | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._membership = membership
        self._sending = sending
        self._loader = loader
        self._local_suffix = ":" + server_name
        # email.invite_client_location: where the identity server's invite mail sends people
        self._web_client_location = web_client_location

    @staticmethod
    def check_request(id_server: str, medium: str) -> None:
        """Refusals an invite by address meets before anything happens: createRoom checks
        its invite_3pid with this before the room exists."""
        check_id_server(id_server)
        if medium != "email":
            # spec: /store-invite takes only email addresses
            raise MatrixError(400, "M_UNRECOGNIZED", "Only email addresses can be invited")

    async def invite(
        self,
        requester: UserRequester,
        room_id: str,
        *,
        id_server: str,
        id_access_token: str,
        medium: str,
        address: str,
    ) -> None:
        self.check_request(id_server, medium)
        state = await state_store.get_current_state_ids(self._db, room_id)
        own = await self._loader.get_event(state.get(("m.room.member", requester.user_id), ""))
        if own is None or own.membership != "join":
            # checked before the identity server stores anything for a refused invite
            raise MatrixError(403, "M_FORBIDDEN", "You are not in this room")
        try:
            found = await self._client.lookup(id_server, id_access_token, medium, address)
        except IdentityServerError as exc:
            raise exc.as_matrix_error() from exc
        if found is not None:
            await self._membership.invite(requester, room_id, found)
            return
        request = {
            "medium": medium,
            "address": address,
            "room_id": room_id,
            "sender": requester.user_id,
            **await self._room_fields(state, requester.user_id),
        }
        if self._web_client_location is not None:
            # Synapse's key, which Sydent reads for the link in its invite mail
            request["org.matrix.web_client_location"] = self._web_client_location
        try:
            stored = await self._client.store_invite(id_server, id_access_token, request)
        except IdentityServerError as exc:
            raise exc.as_matrix_error() from exc
        first = stored.public_keys[0]
        content: dict[str, Any] = {
            "display_name": stored.display_name,
            "public_keys": stored.public_keys,
            # the older single-key fields the spec keeps for compatibility
            "public_key": first["public_key"],
            "key_validity_url": first.get("key_validity_url", ""),
        }
        await self._sending.send_state(
            requester, room_id, THIRD_PARTY_INVITE, stored.token, content
        )

    async def _room_fields(self, state: state_store.StateMap, sender: str) -> dict[str, str]:
        keys = {name: (kind, "") for name, (kind, _) in _ROOM_FIELDS.items()}
        keys["sender_display_name"] = ("m.room.member", sender)
        keys["sender_avatar_url"] = ("m.room.member", sender)
        fields = {name: field for name, (_, field) in _ROOM_FIELDS.items()}
        fields["sender_display_name"] = "displayname"
        fields["sender_avatar_url"] = "avatar_url"
        loaded = await self._loader.get_events(state[k] for k in keys.values() if k in state)
        found: dict[str, str] = {}
        for name, key in keys.items():
            event = loaded.get(state.get(key, ""))
            value = event.content.get(fields[name]) if event is not None else None
            if isinstance(value, str) and value:
                found[name] = value
        return found

    async def on_bind(self, binding: ThreepidBinding) -> None:
        """PUT /_matrix/federation/v1/3pid/onbind: the identity server says `mxid` now
        holds the address and hands over the invites stored for it. Each invite to a room
        this server is in, from one of our users, becomes that user's invite of `mxid`
        carrying the identity server's signed proof (spec: client-server-api "Third-party
        invites"); the room's auth rules check the proof against the public keys of the
        room's m.room.third_party_invite. One invite failing does not stop the others, but
        then the identity server is told of the failure (the last), as Synapse does."""
        if not binding.mxid.endswith(self._local_suffix):
            return
        failure: MatrixError | None = None
        for invite in binding.invites:
            if invite.mxid != binding.mxid or not invite.sender.endswith(self._local_suffix):
                # an invite from another server's user is exchanged by that server
                # (exchange_third_party_invite), which is not done here
                logger.info("Not exchanging the third-party invite to %s", invite.room_id)
                continue
            try:
                await self._exchange(invite)
            except MatrixError as exc:
                logger.info("Third-party invite to %s not exchanged: %s", invite.room_id, exc)
                failure = exc
        if failure is not None:
            raise failure

    async def _check_signing_key(
        self, signed: dict[str, Any], invite_content: dict[str, Any]
    ) -> None:
        """spec: client-server-api "Third-party invites" - the server in the room MUST
        check, at the key's key_validity_url, that the key that signed the proof is still
        valid: an identity server that revoked it, or cannot be asked, invites nobody. The
        signature itself is the auth rules' to check."""
        for public_key, validity_url in third_party_keys_that_signed(signed, invite_content):
            if validity_url is None:
                continue
            try:
                valid = await self._client.key_is_valid(validity_url, public_key)
            except IdentityServerError as exc:
                raise MatrixError(
                    502, "M_UNKNOWN", f"The identity server's key could not be checked: {exc}"
                ) from exc
            if not valid:
                raise MatrixError(
                    403, "M_FORBIDDEN", "The identity server no longer holds the invite's key valid"
                )

    async def redeem_on_join(
        self, requester: UserRequester, room_id: str, signed: dict[str, Any]
    ) -> None:
        """POST /join with `third_party_signed` (spec: client-server-api "Joining rooms"):
        the identity server's proof for a pending m.room.third_party_invite, redeemed into
        the invite the join then follows, as an onbind would. A user already invited or in
        the room is left as they are; an invite from another server's user is left to the
        join (exchange_third_party_invite is not done here)."""
        if signed.get("mxid") != requester.user_id:
            raise MatrixError(403, "M_FORBIDDEN", "third_party_signed is for another user than you")
        sender = signed.get("sender")
        if not isinstance(sender, str) or not sender.endswith(self._local_suffix):
            logger.info("Not exchanging the third-party invite to %s at join", room_id)
            return
        state = await state_store.get_current_state_ids(self._db, room_id)
        own = await self._loader.get_event(state.get(("m.room.member", requester.user_id), ""))
        if own is not None and own.membership in ("invite", "join"):
            return
        await self._exchange(BoundInvite(requester.user_id, room_id, sender, signed))

    async def _exchange(self, invite: BoundInvite) -> None:
        token = invite.signed.get("token")
        if not isinstance(token, str):
            raise MatrixError(400, "M_BAD_JSON", "The signed invite has no token")
        state = await state_store.get_current_state_ids(self._db, invite.room_id)
        stored = await self._loader.get_event(state.get((THIRD_PARTY_INVITE, token), ""))
        if stored is None:
            raise MatrixError(404, "M_NOT_FOUND", "No third-party invite with this token")
        await self._check_signing_key(invite.signed, stored.content)
        display_name = stored.content.get("display_name")
        content = {
            "membership": "invite",
            "third_party_invite": {
                "display_name": display_name if isinstance(display_name, str) else "",
                "signed": invite.signed,
            },
        }
        await self._sending.send(
            EventTemplate("m.room.member", invite.sender, content, invite.room_id, invite.mxid)
        )
