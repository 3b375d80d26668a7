"""An SMTP server on loopback (aiosmtpd, in its own thread) that keeps every mail it is
given, for tests to read as the recipient would."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.integration.homeserver import free_port


@dataclass
class Mail:
    to: list[str]
    message: EmailMessage
    received_at: float

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        content: str = body.get_content()
        return content


@dataclass
class Mailbox:
    mails: list[Mail] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.mails.append(Mail(list(envelope.rcpt_tos), message, time.monotonic()))
        return "250 OK"

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [mail for mail in self.mails if address in mail.to]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[Mail]:
        """The mails to `address` once there are `count`; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.to(address))} mails to {address}, expected {count}")
