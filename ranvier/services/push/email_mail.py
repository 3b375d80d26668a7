"""The mail an email pusher sends: its subject, and its text and HTML rendered from the
`notif_mail` templates (by Synapse's names and variables, so an admin's own templates
carry over), with a link to each room and an unsubscribe link.

An encrypted message is never summarised from its content (the server cannot read it): it
shows as "an encrypted message".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from ranvier.config.email import EmailConfig
from ranvier.protocol.events import Event
from ranvier.services.email.mailer import Mailer
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.templates import Templates
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.event_push_actions import PushAction
from ranvier.storage.pushers import Pusher

logger = logging.getLogger(__name__)

UNSUBSCRIBE_PATH = "/_synapse/client/unsubscribe"
ENCRYPTED_BODY = "an encrypted message"


class UnsubscribeLinks:
    """Links that remove one email pusher without signing in: the user, pushkey and an
    HMAC of both under a key only this server has (derived from its signing key, so links
    in mails already sent keep working across restarts)."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        self._key = hmac.new(secret, b"ranvier email unsubscribe", hashlib.sha256).digest()
        self._base_url = base_url.rstrip("/")

    def token(self, user_id: str, pushkey: str) -> str:
        digest = hmac.new(self._key, f"{user_id}\n{pushkey}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, user_id: str, pushkey: str, token: str) -> bool:
        return hmac.compare_digest(self.token(user_id, pushkey), token)

    def link(self, user_id: str, pushkey: str) -> str:
        query = urlencode(
            {"u": user_id, "p": pushkey, "access_token": self.token(user_id, pushkey)}
        )
        return f"{self._base_url}{UNSUBSCRIBE_PATH}?{query}"


@dataclass
class _Room:
    room_id: str
    title: str
    named: bool
    link: str
    invite: bool
    notifs: list[dict[str, Any]]


class NotificationMail:
    def __init__(
        self,
        *,
        db: Database,
        loader: EventLoader,
        templates: Templates,
        mailer: Mailer,
        config: EmailConfig,
        unsubscribe: UnsubscribeLinks,
    ) -> None:
        self._db = db
        self._loader = loader
        self._templates = templates
        self._mailer = mailer
        self._config = config
        self._unsubscribe = unsubscribe

    def room_link(self, room_id: str) -> str:
        base = self._config.base_url_of_client
        if base:
            return f"{base.rstrip('/')}/#/room/{quote(room_id, safe='!:')}"
        return f"https://matrix.to/#/{quote(room_id, safe='!:')}"

    async def send(self, pusher: Pusher, actions: list[PushAction], *, more: bool) -> None:
        """Mail `pusher`'s address about `actions` (oldest first); `more`: there were
        more than these. Raises MailNotSent."""
        events = await self._loader.get_events(action.event_id for action in actions)
        rooms: dict[str, _Room] = {}
        senders: set[str] = set()
        for action in actions:
            event = events.get(action.event_id)
            if event is None:
                continue
            room = rooms.get(action.room_id)
            if room is None:
                room = rooms[action.room_id] = await self._room(action.room_id)
            message = await self._message(event, pusher.user_id)
            senders.add(message["sender_name"])
            if message["invite"]:
                room.invite = True
            room.notifs.append(
                {
                    "link": f"{room.link}/{quote(event.event_id, safe='$')}",
                    "ts": message["ts"],
                    "messages": [message],
                }
            )
        shown = [room for room in rooms.values() if room.notifs]
        if not shown:
            return
        count = sum(len(room.notifs) for room in shown)
        summary = (
            f"You have {count} unread notification{'s' if count != 1 else ''}"
            f" in {len(shown)} room{'s' if len(shown) != 1 else ''}"
            + (" (and more not listed here)" if more else "")
            + "."
        )
        context = {
            "app_name": self._config.app_name,
            "user_display_name": await self._display_name(pusher.user_id, shown[0].room_id),
            "unsubscribe_link": self._unsubscribe.link(pusher.user_id, pusher.pushkey),
            "summary_text": summary,
            "rooms": [
                {
                    "title": room.title,
                    "link": room.link,
                    "invite": room.invite,
                    "notifs": room.notifs,
                    "avatar_url": None,
                    "hash": 0,
                }
                for room in shown
            ],
        }
        text = self._templates.render(self._config.notif_template_text, **context)
        html = self._templates.render(self._config.notif_template_html, **context)
        mail = self._mailer.compose(pusher.pushkey, self._subject(shown, senders), text, html)
        # RFC 2369 / RFC 8058: mail clients offer their own unsubscribe button
        mail["List-Unsubscribe"] = f"<{context['unsubscribe_link']}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        await self._mailer.send_message(mail)
        logger.info("Mailed %s about %d notifications", pusher.user_id, count)

    def _subject(self, rooms: list[_Room], senders: set[str]) -> str:
        subjects = self._config.subjects
        first = rooms[0]
        person = sorted(senders)[0] if senders else ""
        values = {"app": self._config.app_name, "room": first.title, "person": person}
        if len(rooms) == 1 and first.invite:
            chosen = (
                subjects.invite_from_person_to_room if first.named else subjects.invite_from_person
            )
        elif len(rooms) == 1:
            if len(first.notifs) == 1:
                chosen = (
                    subjects.message_from_person_in_room
                    if first.named
                    else subjects.message_from_person
                )
            elif len(senders) == 1 and not first.named:
                chosen = subjects.messages_from_person
            else:
                chosen = subjects.messages_in_room
        elif len(senders) == 1:
            chosen = subjects.messages_from_person_and_others
        else:
            chosen = subjects.messages_in_room_and_others
        try:
            return chosen % values
        except (KeyError, ValueError, TypeError):
            # an admin's subject with a placeholder this mail has no value for
            return chosen

    async def _room(self, room_id: str) -> _Room:
        state = await state_store.get_current_state_ids(self._db, room_id)
        wanted = [
            state.get(key, "") for key in (("m.room.name", ""), ("m.room.canonical_alias", ""))
        ]
        loaded = await self._loader.get_events(eid for eid in wanted if eid)
        title: str | None = None
        for event_id, field in zip(wanted, ("name", "alias"), strict=True):
            event = loaded.get(event_id)
            value = event.content.get(field) if event is not None else None
            if isinstance(value, str) and value:
                title = value
                break
        return _Room(
            room_id=room_id,
            title=title or room_id,
            named=title is not None,
            link=self.room_link(room_id),
            invite=False,
            notifs=[],
        )

    async def _display_name(self, user_id: str, room_id: str) -> str:
        names = await self._member_names(room_id, [user_id])
        return names.get(user_id) or user_id

    async def _member_names(self, room_id: str, user_ids: list[str]) -> dict[str, str]:
        state = await state_store.get_current_state_ids(self._db, room_id)
        wanted = [state.get(("m.room.member", user_id), "") for user_id in user_ids]
        loaded = await self._loader.get_events(eid for eid in wanted if eid)
        names: dict[str, str] = {}
        for user_id, event_id in zip(user_ids, wanted, strict=True):
            event = loaded.get(event_id)
            name = event.content.get("displayname") if event is not None else None
            if isinstance(name, str) and name:
                names[user_id] = name
        return names

    async def _message(self, event: Event, user_id: str) -> dict[str, Any]:
        names = await self._member_names(event.room_id, [event.sender])
        body: str
        msgtype: str | None = None
        encrypted = event.type == "m.room.encrypted"
        invite = (
            event.type == "m.room.member"
            and event.state_key == user_id
            and event.content.get("membership") == "invite"
        )
        if encrypted:
            body = ENCRYPTED_BODY
        elif invite:
            body = "invited you to the room"
        else:
            raw_body = event.content.get("body")
            raw_type = event.content.get("msgtype")
            msgtype = raw_type if isinstance(raw_type, str) else None
            body = raw_body if isinstance(raw_body, str) else f"sent a {event.type} event"
        ts = datetime.fromtimestamp(event.origin_server_ts / 1000, UTC)
        return {
            "id": event.event_id,
            "event_type": event.type,
            "sender_name": names.get(event.sender, event.sender),
            "sender_avatar_url": None,
            "sender_hash": 0,
            "msgtype": msgtype,
            "is_encrypted": encrypted,
            "is_historical": False,
            "invite": invite,
            "body_text_plain": body,
            "ts": ts.strftime("%H:%M, %d %b %Y (UTC)"),
        }
