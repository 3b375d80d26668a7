"""The m.login.recaptcha stage of user-interactive auth (spec: client-server-api "Google
ReCaptcha"): the client shows Google's widget with the server's public key and sends back the
widget's answer, which the server asks Google's siteverify API to vouch for.

As Synapse, the answer is not tied to a hostname: the captcha may be shown by whichever
client the user has, the server only cares that a person solved one.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from ranvier.errors import MatrixError
from ranvier.services.uia import StageAuth, UIASession

logger = logging.getLogger(__name__)

STAGE_TYPE = "m.login.recaptcha"
# siteverify answers in well under a second; a user waits on this
SITEVERIFY_TIMEOUT_SECONDS = 10.0


class RecaptchaVerifier:
    """Asks siteverify whether a widget's answer is a solved captcha."""

    def __init__(self, private_key: str, siteverify_api: str) -> None:
        self._private_key = private_key
        self._siteverify_api = siteverify_api
        self._session: aiohttp.ClientSession | None = None

    async def verify(self, response: str, client_ip: str | None) -> None:
        """Return if solved; raise the MatrixError the client is shown otherwise."""
        form = {"secret": self._private_key, "response": response}
        if client_ip is not None:
            form["remoteip"] = client_ip
        try:
            async with self._client().post(self._siteverify_api, data=form) as answer:
                if answer.status != 200:
                    raise ValueError(f"HTTP {answer.status}")
                body = await answer.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            logger.warning("The captcha could not be checked at %s: %s", self._siteverify_api, exc)
            raise MatrixError(
                401,
                "M_UNAUTHORIZED",
                "The captcha could not be checked right now; please try again later",
            ) from None
        if not isinstance(body, dict) or body.get("success") is not True:
            codes = body.get("error-codes") if isinstance(body, dict) else None
            logger.info("A captcha answer was refused by siteverify: %s", codes)
            raise MatrixError(401, "M_CAPTCHA_INVALID", "The captcha was not solved; try again")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=SITEVERIFY_TIMEOUT_SECONDS)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class RecaptchaStage:
    """m.login.recaptcha: its `response` must be a captcha siteverify calls solved."""

    def __init__(self, verifier: RecaptchaVerifier, public_key: str) -> None:
        self._verifier = verifier
        self.public_key = public_key

    async def check(self, auth: StageAuth, session: UIASession) -> Any:
        if not auth.captcha_response:
            raise MatrixError(400, "M_CAPTCHA_NEEDED", "Missing 'response': solve the captcha")
        await self._verifier.verify(auth.captcha_response, auth.client_ip)
        return True

    async def on_complete(self, session: UIASession) -> None:
        pass

    def params(self) -> dict[str, Any] | None:
        return {"public_key": self.public_key}
