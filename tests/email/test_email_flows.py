"""Registration with an email address, password reset and adding an address, completed by
following the links in the mails the server sends to a real SMTP server; and the refusals
on the way (wrong secret, expired, reused and unknown links, taken and denied addresses,
phone numbers). One server per engine: registration requires an email address, and only
addresses at example.org may be registered or added."""

from __future__ import annotations

import html
import re
import secrets
import time
import urllib.parse
from typing import Any
from urllib.parse import quote

import pytest

from tests.email.conftest import TOKEN_LIFETIME_SECONDS, email_server
from tests.email.smtp import CapturingSmtpServer, html_of, link_in, text_of
from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session, authed, make_admin

server = email_server(
    enable_registration=True,
    registrations_require_3pid=["email"],
    allowed_local_3pids=[{"medium": "email", "pattern": r"^[^@]+@example\.org$"}],
    next_link_domain_whitelist=["client.example.org"],
)

EMAIL_STAGE = "m.login.email.identity"


def new_secret() -> str:
    return secrets.token_urlsafe(16)


def request_token(
    server: RunningServer, kind: str, address: str, secret: str, attempt: int = 1, **extra: Any
) -> Reply:
    paths = {
        "register": "/register/email/requestToken",
        "password": "/account/password/email/requestToken",
        "3pid": "/account/3pid/email/requestToken",
    }
    body = {"client_secret": secret, "email": address, "send_attempt": attempt, **extra}
    return request("POST", server.url + CLIENT + paths[kind], body)


def follow(link: str) -> Reply:
    """What a browser gets opening the link (a POST of the confirmation form for the
    password reset page, as pressing its button does)."""
    first = request("GET", link)
    if "/password_reset/" not in link or first.status != 200:
        return first
    page = first.body.decode()
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page))
    form = urllib.parse.urlencode({k: html.unescape(v) for k, v in fields.items()}).encode()
    return request("POST", link, form, {"Content-Type": "application/x-www-form-urlencoded"})


def register_with_email(
    server: RunningServer, smtp: CapturingSmtpServer, localpart: str, address: str
) -> Session:
    secret = new_secret()
    sid = request_token(server, "register", address, secret).json()["sid"]
    assert follow(link_in(smtp.wait_for_mail(address))).status == 200
    body = {
        "username": localpart,
        "password": DEFAULT_PASSWORD,
        "auth": {"type": EMAIL_STAGE, "threepid_creds": {"sid": sid, "client_secret": secret}},
    }
    reply = request("POST", server.url + CLIENT + "/register", body)
    assert reply.status == 200, reply.body
    data = reply.json()
    return Session(data["user_id"], data["access_token"], data["device_id"])


def test_registration_offers_only_the_email_flow(server: RunningServer) -> None:
    reply = request("POST", server.url + CLIENT + "/register", {})
    assert reply.status == 401
    assert reply.json()["flows"] == [{"stages": [EMAIL_STAGE]}]


def test_registration_completes_by_following_the_mailed_link(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    secret = new_secret()
    reply = request_token(server, "register", "Alice@Example.org", secret)
    assert reply.status == 200, reply.body
    sid = reply.json()["sid"]
    # the address is stored and mailed as the server canonicalises it
    mail = smtp.wait_for_mail("alice@example.org")
    assert mail["From"] == "Your Friendly Ranvier Test homeserver <noreply@test.localhost>"
    assert mail["Subject"] == "[test.localhost] Validate your email"
    link = link_in(mail)
    assert link.startswith(server.url + "/_matrix/client/unstable/registration/email/submit_token?")
    assert link in html.unescape(html_of(mail))

    creds = {"sid": sid, "client_secret": secret}
    auth = {"type": EMAIL_STAGE, "threepid_creds": creds}
    body = {"username": "alice", "password": DEFAULT_PASSWORD}
    # before the link is followed the stage refuses, inside the 401
    early = request("POST", server.url + CLIENT + "/register", {**body, "auth": auth})
    assert early.status == 401 and early.json()["errcode"] == "M_UNAUTHORIZED"
    session = early.json()["session"]

    page = follow(link)
    assert page.status == 200 and "confirmed" in page.body.decode()
    done = request(
        "POST",
        server.url + CLIENT + "/register",
        {**body, "auth": {**auth, "session": session}},
    )
    assert done.status == 200, done.body
    alice = Session(done.json()["user_id"], done.json()["access_token"], done.json()["device_id"])

    threepids = authed(alice, "GET", server.url + CLIENT + "/account/3pid").json()["threepids"]
    assert [(t["medium"], t["address"]) for t in threepids] == [("email", "alice@example.org")]
    assert threepids[0]["validated_at"] <= threepids[0]["added_at"]

    # the address now logs in, in the spec's form and the deprecated top-level one
    for login in (
        {
            "identifier": {
                "type": "m.id.thirdparty",
                "medium": "email",
                "address": "ALICE@example.org",
            }
        },
        {"medium": "email", "address": "alice@example.org"},
    ):
        reply = request(
            "POST",
            server.url + CLIENT + "/login",
            {"type": "m.login.password", "password": DEFAULT_PASSWORD, **login},
        )
        assert reply.status == 200, reply.body
        assert reply.json()["user_id"] == alice.user_id
    wrong = request(
        "POST",
        server.url + CLIENT + "/login",
        {
            "type": "m.login.password",
            "password": "wrong",
            "identifier": {
                "type": "m.id.thirdparty",
                "medium": "email",
                "address": "alice@example.org",
            },
        },
    )
    assert wrong.status == 403 and wrong.errcode == "M_FORBIDDEN"


def test_the_same_send_attempt_sends_no_second_mail(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    secret = new_secret()
    first = request_token(server, "register", "repeat@example.org", secret).json()["sid"]
    smtp.wait_for_mail("repeat@example.org")
    again = request_token(server, "register", "repeat@example.org", secret).json()["sid"]
    assert again == first
    time.sleep(0.3)
    assert len(smtp.mails_to("repeat@example.org")) == 1
    # a new attempt mails a new link in the same session
    third = request_token(server, "register", "repeat@example.org", secret, attempt=2)
    assert third.json()["sid"] == first
    second_mail = smtp.wait_for_mail("repeat@example.org", count=2)
    assert link_in(second_mail) != link_in(smtp.mails_to("repeat@example.org")[0])


def test_a_taken_address_cannot_register_again(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    register_with_email(server, smtp, "taken", "taken@example.org")
    reply = request_token(server, "register", "Taken@example.org", new_secret())
    assert reply.status == 400 and reply.errcode == "M_THREEPID_IN_USE"


def test_addresses_outside_allowed_local_3pids_are_denied(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    reply = request_token(server, "register", "mallory@elsewhere.net", new_secret())
    assert reply.status == 403 and reply.errcode == "M_THREEPID_DENIED"
    assert smtp.mails_to("mallory@elsewhere.net") == []


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (
            {"client_secret": "has spaces", "email": "x@example.org", "send_attempt": 1},
            "M_INVALID_PARAM",
        ),
        ({"client_secret": "ok", "email": "not-an-address", "send_attempt": 1}, "M_INVALID_PARAM"),
        ({"client_secret": "ok", "email": "x@example.org"}, "M_MISSING_PARAM"),
        (
            {
                "client_secret": "ok",
                "email": "x@example.org",
                "send_attempt": 1,
                "next_link": "https://evil.example.com/",
            },
            "M_INVALID_PARAM",
        ),
        (
            {
                "client_secret": "ok",
                "email": "x@example.org",
                "send_attempt": 1,
                "next_link": "javascript:alert(1)",
            },
            "M_INVALID_PARAM",
        ),
    ],
)
def test_bad_request_token_bodies_are_refused(
    server: RunningServer, body: dict[str, Any], errcode: str
) -> None:
    reply = request("POST", server.url + CLIENT + "/register/email/requestToken", body)
    assert reply.status == 400 and reply.errcode == errcode, reply.body


@pytest.mark.parametrize("path", ["/register", "/account/password", "/account/3pid"])
def test_phone_numbers_are_refused(server: RunningServer, path: str) -> None:
    body = {"client_secret": "s", "country": "GB", "phone_number": "07700900000", "send_attempt": 1}
    reply = request("POST", server.url + CLIENT + path + "/msisdn/requestToken", body)
    assert reply.status == 400 and reply.errcode == "M_THREEPID_MEDIUM_NOT_SUPPORTED"


def test_links_with_a_wrong_secret_an_unknown_session_or_used_twice_fail(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    secret = new_secret()
    sid = request_token(server, "register", "links@example.org", secret).json()["sid"]
    link = link_in(smtp.wait_for_mail("links@example.org"))
    wrong_secret = link.replace(urllib.parse.quote(secret), "not-the-secret")
    assert wrong_secret != link
    page = follow(wrong_secret)
    assert page.status == 400 and "could not confirm" in page.body.decode()
    unknown = follow(link.replace(sid, "no-such-session"))
    assert unknown.status == 400 and "could not confirm" in unknown.body.decode()
    assert follow(link).status == 200
    reused = follow(link)
    assert reused.status == 400 and "could not confirm" in reused.body.decode()
    # the session itself stays validated: the stage passes
    reply = request(
        "POST",
        server.url + CLIENT + "/register",
        {
            "username": "links",
            "password": DEFAULT_PASSWORD,
            "auth": {"type": EMAIL_STAGE, "threepid_creds": {"sid": sid, "client_secret": secret}},
        },
    )
    assert reply.status == 200, reply.body


def test_the_stage_refuses_an_unknown_session_and_a_wrong_secret(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    secret = new_secret()
    sid = request_token(server, "register", "stage@example.org", secret).json()["sid"]
    follow(link_in(smtp.wait_for_mail("stage@example.org")))
    for creds in ({"sid": "nope", "client_secret": secret}, {"sid": sid, "client_secret": "wrong"}):
        reply = request(
            "POST",
            server.url + CLIENT + "/register",
            {
                "username": "stage",
                "password": DEFAULT_PASSWORD,
                "auth": {"type": EMAIL_STAGE, "threepid_creds": creds},
            },
        )
        assert reply.status == 401 and reply.errcode == "M_UNAUTHORIZED", reply.body
    missing = request(
        "POST",
        server.url + CLIENT + "/register",
        {"username": "stage", "password": DEFAULT_PASSWORD, "auth": {"type": EMAIL_STAGE}},
    )
    assert missing.status == 401 and missing.errcode == "M_MISSING_PARAM"


def test_an_expired_link_fails(server: RunningServer, smtp: CapturingSmtpServer) -> None:
    secret = new_secret()
    request_token(server, "register", "late@example.org", secret)
    link = link_in(smtp.wait_for_mail("late@example.org"))
    time.sleep(TOKEN_LIFETIME_SECONDS + 0.5)
    page = follow(link)
    assert page.status == 400 and "expired" in page.body.decode()


def test_next_link_is_where_the_browser_goes_after_the_link(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    next_link = "https://client.example.org/after?x=1"
    request_token(server, "register", "next@example.org", new_secret(), next_link=next_link)
    reply = request("GET", link_in(smtp.wait_for_mail("next@example.org")))
    assert reply.status == 302 and reply.headers["Location"] == next_link


def test_password_reset_by_following_the_mailed_link(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    bob = register_with_email(server, smtp, "bob", "bob@example.org")
    secret = new_secret()
    reply = request_token(server, "password", "bob@example.org", secret)
    assert reply.status == 200, reply.body
    sid = reply.json()["sid"]
    mail = smtp.wait_for_mail("bob@example.org", count=2)
    assert mail["Subject"] == "[test.localhost] Password reset"
    link = link_in(mail)
    assert link.startswith(server.url + "/_synapse/client/password_reset/email/submit_token?")
    # opening the link only shows a confirmation: a mail scanner does not validate it
    confirmation = request("GET", link)
    assert confirmation.status == 200 and "<form" in confirmation.body.decode()
    creds = {"sid": sid, "client_secret": secret}
    early = request(
        "POST",
        server.url + CLIENT + "/account/password",
        {"new_password": "new one", "auth": {"type": EMAIL_STAGE, "threepid_creds": creds}},
    )
    assert early.status == 401 and early.errcode == "M_UNAUTHORIZED"
    assert follow(link).status == 200
    reset = request(
        "POST",
        server.url + CLIENT + "/account/password",
        {"new_password": "new one", "auth": {"type": EMAIL_STAGE, "threepid_creds": creds}},
    )
    assert reset.status == 200, reset.body
    # every session was logged out; the new password works and the old one does not
    assert authed(bob, "GET", server.url + CLIENT + "/account/whoami").status == 401
    login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"}}
    assert (
        request("POST", server.url + CLIENT + "/login", {**login, "password": "new one"}).status
        == 200
    )
    old = request("POST", server.url + CLIENT + "/login", {**login, "password": DEFAULT_PASSWORD})
    assert old.status == 403


def test_password_reset_of_an_unknown_address_is_refused(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    reply = request_token(server, "password", "nobody@example.org", new_secret())
    assert reply.status == 400 and reply.errcode == "M_THREEPID_NOT_FOUND"
    assert smtp.mails_to("nobody@example.org") == []
    # without an access token the password endpoint asks for the email stage only
    reply = request("POST", server.url + CLIENT + "/account/password", {"new_password": "x"})
    assert reply.status == 401 and reply.json()["flows"] == [{"stages": [EMAIL_STAGE]}]
    # with a token it is the signed-in user's change, whose token must be good
    bogus = request(
        "POST",
        server.url + CLIENT + "/account/password",
        {"new_password": "x"},
        {"Authorization": "Bearer not-a-token"},
    )
    assert bogus.status == 401 and bogus.errcode == "M_UNKNOWN_TOKEN"


def test_adding_and_deleting_an_address(server: RunningServer, smtp: CapturingSmtpServer) -> None:
    carol = register_with_email(server, smtp, "carol", "carol@example.org")
    secret = new_secret()
    reply = request_token(server, "3pid", "carol.work@example.org", secret)
    assert reply.status == 200, reply.body
    sid = reply.json()["sid"]
    link = link_in(smtp.wait_for_mail("carol.work@example.org"))
    assert link.startswith(server.url + "/_matrix/client/unstable/add_threepid/email/submit_token?")
    add_url = server.url + CLIENT + "/account/3pid/add"
    # not validated yet
    password_auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "carol"},
        "password": DEFAULT_PASSWORD,
    }
    early = authed(
        carol, "POST", add_url, {"sid": sid, "client_secret": secret, "auth": password_auth}
    )
    assert early.status == 400 and early.errcode == "M_THREEPID_AUTH_FAILED"
    assert follow(link).status == 200
    challenge = authed(carol, "POST", add_url, {"sid": sid, "client_secret": secret})
    assert challenge.status == 401
    assert challenge.json()["flows"] == [{"stages": ["m.login.password"]}]
    added = authed(
        carol,
        "POST",
        add_url,
        {
            "sid": sid,
            "client_secret": secret,
            "auth": {**password_auth, "session": challenge.json()["session"]},
        },
    )
    assert added.status == 200, added.body
    listed = authed(carol, "GET", server.url + CLIENT + "/account/3pid").json()["threepids"]
    assert {t["address"] for t in listed} == {"carol@example.org", "carol.work@example.org"}

    # someone else cannot take it now
    taken = request_token(server, "3pid", "carol.work@example.org", new_secret())
    assert taken.status == 400 and taken.errcode == "M_THREEPID_IN_USE"

    deleted = authed(
        carol,
        "POST",
        server.url + CLIENT + "/account/3pid/delete",
        {"medium": "email", "address": "carol.work@example.org"},
    )
    assert deleted.status == 200 and deleted.json() == {"id_server_unbind_result": "no-support"}
    listed = authed(carol, "GET", server.url + CLIENT + "/account/3pid").json()["threepids"]
    assert [t["address"] for t in listed] == ["carol@example.org"]


def test_deactivation_frees_the_address(server: RunningServer, smtp: CapturingSmtpServer) -> None:
    dave = register_with_email(server, smtp, "dave", "dave@example.org")
    reply = authed(
        dave,
        "POST",
        server.url + CLIENT + "/account/deactivate",
        {
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "dave"},
                "password": DEFAULT_PASSWORD,
            }
        },
    )
    assert reply.status == 200, reply.body
    again = request_token(server, "register", "dave@example.org", new_secret())
    assert again.status == 200, again.body


def test_the_text_and_html_parts_carry_the_same_link(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    request_token(server, "register", "parts@example.org", new_secret())
    mail = smtp.wait_for_mail("parts@example.org")
    assert mail.get_content_type() == "multipart/alternative"
    assert "test.localhost" in text_of(mail)
    assert link_in(mail) in html.unescape(html_of(mail))


def test_the_admin_api_shows_sets_and_looks_up_addresses(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    admin = make_admin(server.config_path, "emailadmin")
    erin = register_with_email(server, smtp, "erin", "erin@example.org")
    admin_url = server.url + "/_synapse/admin"
    shown = authed(admin, "GET", f"{admin_url}/v2/users/{quote(erin.user_id)}").json()
    assert [(t["medium"], t["address"]) for t in shown["threepids"]] == [
        ("email", "erin@example.org")
    ]
    found = authed(admin, "GET", f"{admin_url}/v1/threepid/email/users/erin@example.org")
    assert found.status == 200 and found.json() == {"user_id": erin.user_id}
    missing = authed(admin, "GET", f"{admin_url}/v1/threepid/email/users/none@example.org")
    assert missing.status == 404 and missing.errcode == "M_NOT_FOUND"

    # PUT replaces the set (the admin is not held to allowed_local_3pids)
    put = authed(
        admin,
        "PUT",
        f"{admin_url}/v2/users/{quote(erin.user_id)}",
        {"threepids": [{"medium": "email", "address": "Erin@Elsewhere.net"}]},
    )
    assert put.status == 200, put.body
    assert [t["address"] for t in put.json()["threepids"]] == ["erin@elsewhere.net"]
    listed = authed(erin, "GET", server.url + CLIENT + "/account/3pid").json()["threepids"]
    assert [t["address"] for t in listed] == ["erin@elsewhere.net"]

    # an address of another account is refused and nothing changes
    register_with_email(server, smtp, "frank", "frank@example.org")
    taken = authed(
        admin,
        "PUT",
        f"{admin_url}/v2/users/{quote(erin.user_id)}",
        {
            "displayname": "Not applied",
            "threepids": [{"medium": "email", "address": "frank@example.org"}],
        },
    )
    assert taken.status == 409 and taken.errcode == "M_THREEPID_IN_USE"
    after = authed(admin, "GET", f"{admin_url}/v2/users/{quote(erin.user_id)}").json()
    assert after["displayname"] != "Not applied"
    assert [t["address"] for t in after["threepids"]] == ["erin@elsewhere.net"]
    bad = authed(
        admin,
        "PUT",
        f"{admin_url}/v2/users/{quote(erin.user_id)}",
        {"threepids": [{"medium": "carrier-pigeon", "address": "coop 3"}]},
    )
    assert bad.status == 400 and bad.errcode == "M_INVALID_PARAM"


def test_the_legacy_add_endpoint_and_denied_addresses(
    server: RunningServer, smtp: CapturingSmtpServer
) -> None:
    ivan = register_with_email(server, smtp, "ivan", "ivan@example.org")
    denied = request_token(server, "3pid", "ivan@elsewhere.net", new_secret())
    assert denied.status == 403 and denied.errcode == "M_THREEPID_DENIED"
    secret = new_secret()
    sid = request_token(server, "3pid", "ivan.2@example.org", secret).json()["sid"]
    url = server.url + CLIENT + "/account/3pid"
    early = authed(ivan, "POST", url, {"three_pid_creds": {"sid": sid, "client_secret": secret}})
    assert early.status == 400 and early.errcode == "M_THREEPID_AUTH_FAILED"
    follow(link_in(smtp.wait_for_mail("ivan.2@example.org")))
    # Synapse's older spelling of the field
    added = authed(ivan, "POST", url, {"threePidCreds": {"sid": sid, "client_secret": secret}})
    assert added.status == 200, added.body
    listed = authed(ivan, "GET", url).json()["threepids"]
    assert {t["address"] for t in listed} == {"ivan@example.org", "ivan.2@example.org"}
    missing = authed(ivan, "POST", url, {})
    assert missing.status == 400 and missing.errcode == "M_MISSING_PARAM"
