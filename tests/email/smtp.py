"""A real SMTP server on loopback (aiosmtpd) that keeps every message it is sent, for tests
to read the mails the homeserver sends and follow their links."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, LoginPassword, Session

from tests.integration.homeserver import free_port

LINK = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Delivery:
    """How a message came: over TLS or not, and who logged in (AUTH) to send it."""

    encrypted: bool
    login: str | None


class _Keeper:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        credentials = session.auth_data if session.authenticated else None
        login = credentials.login.decode() if isinstance(credentials, LoginPassword) else None
        with self.lock:
            self.messages.append(message)
            # STARTTLS sets session.ssl; a TLS-only (SMTPS) server's transport is TLS anyway
            encrypted = session.ssl is not None or bool(
                server.transport.get_extra_info("ssl_object")
            )
            self.deliveries.append(Delivery(encrypted, login))
        return "250 Message accepted for delivery"


class CapturingSmtpServer:
    def __init__(self, **controller_options: Any) -> None:
        self._keeper = _Keeper()
        self.port = free_port()
        self._controller = Controller(
            self._keeper, hostname="127.0.0.1", port=self.port, **controller_options
        )

    def __enter__(self) -> CapturingSmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    @property
    def deliveries(self) -> list[Delivery]:
        with self._keeper.lock:
            return list(self._keeper.deliveries)

    @property
    def messages(self) -> list[EmailMessage]:
        with self._keeper.lock:
            return list(self._keeper.messages)

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def wait_for_mail(self, address: str, count: int = 1, timeout: float = 10.0) -> EmailMessage:
        """The `count`th mail to `address`, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.mails_to(address)
            if len(mails) >= count:
                return mails[count - 1]
            time.sleep(0.02)
        raise AssertionError(f"no mail number {count} to {address} within {timeout}s")


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the mail has no text part"
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "the mail has no HTML part"
    return str(part.get_content())


def link_in(message: EmailMessage) -> str:
    """The one link of a validation mail's text part."""
    links = LINK.findall(text_of(message))
    assert len(links) == 1, links
    return str(links[0])
