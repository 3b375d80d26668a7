"""Removing an email pusher from the signed link in its mails, without signing in."""

from __future__ import annotations

from ranvier.errors import MatrixError
from ranvier.services.push.email_mail import UnsubscribeLinks
from ranvier.services.push.email_pusher import EMAIL_APP_ID
from ranvier.services.push.pushers import PusherService


class EmailUnsubscribe:
    def __init__(self, links: UnsubscribeLinks, pushers: PusherService) -> None:
        self._links = links
        self._pushers = pushers

    def check(self, user_id: str, pushkey: str, token: str) -> None:
        if not self._links.verify(user_id, pushkey, token):
            raise MatrixError(
                403, "M_FORBIDDEN", "This unsubscribe link is not valid: use the one in the mail"
            )

    async def unsubscribe(self, user_id: str, pushkey: str, token: str) -> None:
        """Remove the pusher; a second click finds it gone and succeeds all the same."""
        self.check(user_id, pushkey, token)
        await self._pushers.delete_pusher(user_id, EMAIL_APP_ID, pushkey)
