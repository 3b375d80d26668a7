"""Synapse's captcha options: Google reCAPTCHA (v2) at registration.

`enable_registration_captcha` adds the m.login.recaptcha stage in front of every registration
flow; the keys come from the admin's reCAPTCHA console (inline, or from files through the
`_path` forms loader.py reads). Answers are checked against `recaptcha_siteverify_api`.
"""

from __future__ import annotations

from urllib.parse import urlparse

# Synapse's default: Google's endpoint on the domain that is also reachable from China
DEFAULT_SITEVERIFY_API = "https://www.recaptcha.net/recaptcha/api/siteverify"


def captcha_problems(
    enabled: bool, public_key: str | None, private_key: str | None, siteverify_api: str
) -> list[str]:
    """Start-up refusals: a captcha that cannot be shown or checked."""
    problems: list[str] = []
    if enabled:
        for key, value in (
            ("recaptcha_public_key", public_key),
            ("recaptcha_private_key", private_key),
        ):
            if not value:
                problems.append(
                    f"enable_registration_captcha: {key} (or {key}_path) is required to "
                    "show and check a captcha; copy it from your reCAPTCHA admin console, or "
                    "set enable_registration_captcha: false"
                )
    parsed = urlparse(siteverify_api)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        problems.append(
            f"recaptcha_siteverify_api: {siteverify_api!r} is not an http(s) URL; remove it "
            f"to use {DEFAULT_SITEVERIFY_API}"
        )
    return problems
