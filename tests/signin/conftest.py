"""Servers for the sign-in tests: the per-engine database fixture, and the admin's consent
templates (a policy and the page shown once it is accepted)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import module_database

__all__ = ["module_database", "write_policy_templates"]

POLICY = """<!DOCTYPE html>
<html><head><title>Policy {{ version }}</title></head><body>
<h1>House rules, version {{ version }}</h1>
<p>Be kind.</p>
{% if has_consented %}<p id="state">already accepted</p>
{% elif public_version %}<p id="state">public copy</p>
{% else %}
<form method="post" action="consent">
<input type="hidden" name="v" value="{{ version }}">
<input type="hidden" name="u" value="{{ user }}">
<input type="hidden" name="h" value="{{ userhmac }}">
<input type="submit" value="I accept">
</form>
{% endif %}
</body></html>
"""

SUCCESS = "<!DOCTYPE html><html><body><p>Thank you for accepting.</p></body></html>\n"


def write_policy_templates(directory: Path, version: str) -> Path:
    (directory / "en").mkdir(parents=True, exist_ok=True)
    (directory / "en" / f"{version}.html").write_text(POLICY)
    (directory / "en" / "success.html").write_text(SUCCESS)
    return directory
