"""reCAPTCHA and the policy at registration, over real HTTP on both engines: the stages in
the 401, the captcha checked against a siteverify stub the test scripts (solved, unsolved,
failing, unreachable), their fallback pages, the consent pages, and sends refused until the
user consents."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session, authed, make_admin
from tests.signin.conftest import write_policy_templates
from tests.signin.siteverify_stub import BROKEN, HANG_UP, SOLVED, UNSOLVED, SiteverifyStub

RECAPTCHA = "m.login.recaptcha"
TERMS = "m.login.terms"
DUMMY = "m.login.dummy"
PUBLIC_KEY = "6Lc-public-site-key"
PRIVATE_KEY = "6Lc-private-secret-key"
FORM_SECRET = "a form secret nobody else knows"
VERSION = "1.0"
BLOCK_ERROR = "Please accept our house rules first: %(consent_uri)s"
REGISTER = CLIENT + "/register"
NOTICE = "Before you go on, please read and accept our house rules: %(consent_uri)s"


@pytest.fixture(scope="module")
def siteverify(module_database: dict[str, Any]) -> Iterator[SiteverifyStub]:
    with SiteverifyStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    siteverify: SiteverifyStub,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    write_policy_templates(directory / "policy", VERSION)
    port = free_port()
    config = write_test_config(
        directory,
        module_database,
        port,
        listeners=[
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "resources": [{"names": ["client", "consent"]}],
            }
        ],
        public_baseurl=f"http://127.0.0.1:{port}/",
        enable_registration=True,
        enable_registration_captcha=True,
        recaptcha_public_key=PUBLIC_KEY,
        recaptcha_private_key=PRIVATE_KEY,
        recaptcha_siteverify_api=siteverify.url,
        form_secret=FORM_SECRET,
        user_consent={
            # relative to the config file, as admins write it
            "template_dir": "policy",
            "version": VERSION,
            "require_at_registration": True,
            "policy_name": "House rules",
            "block_events_error": BLOCK_ERROR,
            "server_notice_content": {"msgtype": "m.text", "body": NOTICE},
        },
        server_notices={"system_mxid_localpart": "notices"},
    )
    running = start_server(config, port)
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log()


def start(server: RunningServer, username: str) -> dict[str, Any]:
    reply = request("POST", server.url + REGISTER, {"username": username, "password": "pw-1234"})
    assert reply.status == 401, reply.body
    body: dict[str, Any] = reply.json()
    return body


def stage(server: RunningServer, session: str, auth: dict[str, Any]) -> Reply:
    return request("POST", server.url + REGISTER, {"auth": {"session": session, **auth}})


def mac(user: str) -> str:
    return hmac.new(FORM_SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()


def form_post(url: str, fields: dict[str, str]) -> Reply:
    return request(
        "POST",
        url,
        urlencode(fields).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )


# -- the stages in the 401 ---------------------------------------------------------------


def test_registration_offers_captcha_then_policy_in_every_flow(server: RunningServer) -> None:
    body = start(server, "flows")
    assert body["flows"] == [{"stages": [RECAPTCHA, TERMS, DUMMY]}]
    assert body["params"][RECAPTCHA] == {"public_key": PUBLIC_KEY}
    policy = body["params"][TERMS]["policies"]["privacy_policy"]
    assert policy["version"] == VERSION
    assert policy["en"]["name"] == "House rules"
    # the link the client shows opens the public copy of the policy
    page = request("GET", policy["en"]["url"])
    assert page.status == 200
    assert b"House rules, version 1.0" in page.body and b"public copy" in page.body


def test_register_through_captcha_and_policy(server: RunningServer) -> None:
    session = start(server, "carol")["session"]
    solved = stage(server, session, {"type": RECAPTCHA, "response": SOLVED})
    assert solved.status == 401 and solved.json()["completed"] == [RECAPTCHA]
    accepted = stage(server, session, {"type": TERMS})
    assert accepted.status == 401
    assert sorted(accepted.json()["completed"]) == sorted([RECAPTCHA, TERMS])
    done = stage(server, session, {"type": DUMMY})
    assert done.status == 200, done.body
    assert done.json()["user_id"] == "@carol:test.localhost"
    # a registration that accepted the policy may send at once
    carol = Session(done.json()["user_id"], done.json()["access_token"], done.json()["device_id"])
    created = authed(carol, "POST", server.url + CLIENT + "/createRoom", {})
    assert created.status == 200, created.body


def test_siteverify_is_told_the_secret_the_answer_and_the_address(
    server: RunningServer, siteverify: SiteverifyStub
) -> None:
    session = start(server, "dave")["session"]
    stage(server, session, {"type": RECAPTCHA, "response": SOLVED})
    form = siteverify.forms_for(SOLVED)[-1]
    assert form == {"secret": PRIVATE_KEY, "response": SOLVED, "remoteip": "127.0.0.1"}


@pytest.mark.parametrize(
    ("answer", "errcode"),
    [
        (UNSOLVED, "M_CAPTCHA_INVALID"),
        (BROKEN, "M_UNAUTHORIZED"),
        (HANG_UP, "M_UNAUTHORIZED"),
    ],
)
def test_captcha_refusals_stay_in_the_session(
    server: RunningServer, answer: str, errcode: str
) -> None:
    session = start(server, "refused")["session"]
    refused = stage(server, session, {"type": RECAPTCHA, "response": answer})
    assert refused.status == 401, refused.body
    assert refused.errcode == errcode
    assert refused.json()["completed"] == []
    assert refused.json()["session"] == session
    # the dummy stage alone does not get past the captcha
    dummy = stage(server, session, {"type": DUMMY})
    assert dummy.status == 401 and dummy.json()["completed"] == [DUMMY]
    # the same session goes on once the captcha is solved
    solved = stage(server, session, {"type": RECAPTCHA, "response": SOLVED})
    assert sorted(solved.json()["completed"]) == sorted([DUMMY, RECAPTCHA])


def test_captcha_without_an_answer(server: RunningServer) -> None:
    session = start(server, "noanswer")["session"]
    refused = stage(server, session, {"type": RECAPTCHA})
    assert refused.status == 401
    assert refused.errcode == "M_CAPTCHA_NEEDED"
    wrong_type = stage(server, session, {"type": RECAPTCHA, "response": 42})
    assert wrong_type.status == 401 and wrong_type.json()["completed"] == []


def test_skipping_the_policy_registers_nothing(server: RunningServer) -> None:
    session = start(server, "skipper")["session"]
    stage(server, session, {"type": RECAPTCHA, "response": SOLVED})
    skipped = stage(server, session, {"type": DUMMY})
    assert skipped.status == 401
    assert TERMS not in skipped.json()["completed"]
    available = request("GET", server.url + REGISTER + "/available?username=skipper")
    assert available.status == 200


# -- fallback pages ----------------------------------------------------------------------


def fallback(server: RunningServer, stage_type: str, session: str, prefix: str = CLIENT) -> str:
    return f"{server.url}{prefix}/auth/{stage_type}/fallback/web?session={session}"


def test_register_through_the_fallback_pages(server: RunningServer) -> None:
    session = start(server, "erin")["session"]
    page = request("GET", fallback(server, RECAPTCHA, session))
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    assert f'data-sitekey="{PUBLIC_KEY}"' in html
    assert "https://www.recaptcha.net/recaptcha/api.js" in html
    # the browser posts the widget's answer to the page's own URL
    action = re.search(r'action="([^"]+)"', html)
    assert action is not None
    action_url = server.url + action.group(1).replace("&amp;", "&")

    wrong = form_post(action_url, {"g-recaptcha-response": UNSOLVED})
    assert wrong.status == 200
    assert b"not solved" in wrong.body and b"authDone" not in wrong.body
    assert stage(server, session, {}).json()["completed"] == []

    done = form_post(action_url, {"g-recaptcha-response": SOLVED})
    assert done.status == 200
    # spec "Fallback": the page tells the client the stage is done
    assert b"window.onAuthDone()" in done.body
    assert b'postMessage("authDone", "*")' in done.body

    terms_page = request("GET", fallback(server, TERMS, session))
    assert terms_page.status == 200
    assert b"_matrix/consent?v=1.0" in terms_page.body
    accepted = form_post(fallback(server, TERMS, session), {"session": session})
    assert b"authDone" in accepted.body

    # the client resubmits with just the session, then the last stage
    retried = stage(server, session, {})
    assert retried.status == 401
    assert sorted(retried.json()["completed"]) == sorted([RECAPTCHA, TERMS])
    registered = stage(server, session, {"type": DUMMY})
    assert registered.status == 200, registered.body
    assert registered.json()["user_id"] == "@erin:test.localhost"


def test_fallback_refusals(server: RunningServer) -> None:
    session = start(server, "fallbackrefusals")["session"]
    unknown_stage = request("GET", fallback(server, "m.login.carrier_pigeon", session))
    assert unknown_stage.status == 404 and unknown_stage.errcode == "M_UNRECOGNIZED"
    # the dummy stage needs no page
    assert request("GET", fallback(server, DUMMY, session)).errcode == "M_UNRECOGNIZED"
    unknown_session = request("GET", fallback(server, RECAPTCHA, "no-such-session"))
    assert unknown_session.status == 400 and unknown_session.errcode == "M_UNKNOWN"
    posted_unknown = form_post(fallback(server, TERMS, "no-such-session"), {})
    assert posted_unknown.status == 400
    no_session = request("GET", f"{server.url}{CLIENT}/auth/{RECAPTCHA}/fallback/web")
    assert no_session.status == 400 and no_session.errcode == "M_MISSING_PARAM"


def test_fallback_page_on_the_r0_path(server: RunningServer) -> None:
    session = start(server, "oldclient")["session"]
    page = request("GET", fallback(server, RECAPTCHA, session, "/_matrix/client/r0"))
    assert page.status == 200 and PUBLIC_KEY.encode() in page.body


# -- consent pages and sends -------------------------------------------------------------


@pytest.fixture(scope="module")
def frank(server: RunningServer) -> Session:
    """An account the admin made: it never saw the policy."""
    return make_admin(server.config_path, "frank", DEFAULT_PASSWORD)


def test_sends_are_refused_until_consent(server: RunningServer, frank: Session) -> None:
    refused = authed(frank, "POST", server.url + CLIENT + "/createRoom", {})
    assert refused.status == 403, refused.body
    assert refused.errcode == "M_CONSENT_NOT_GIVEN"
    consent_uri = refused.json()["consent_uri"]
    assert refused.json()["error"] == BLOCK_ERROR % {"consent_uri": consent_uri}
    query = parse_qs(urlparse(consent_uri).query)
    assert query == {"u": ["frank"], "h": [mac("frank")]}

    page = request("GET", consent_uri)
    assert page.status == 200
    assert b'name="h" value="' + mac("frank").encode() in page.body
    assert b"already accepted" not in page.body

    accepted = form_post(
        server.url + "/_matrix/consent", {"v": VERSION, "u": "frank", "h": mac("frank")}
    )
    assert accepted.status == 200, accepted.body
    assert b"Thank you for accepting." in accepted.body
    assert b"already accepted" in request("GET", consent_uri).body

    created = authed(frank, "POST", server.url + CLIENT + "/createRoom", {})
    assert created.status == 200, created.body


def test_consent_page_refusals(server: RunningServer) -> None:
    consent = server.url + "/_matrix/consent"
    forged = request("GET", consent + "?" + urlencode({"u": "frank", "h": mac("someone")}))
    assert forged.status == 403 and forged.errcode == "M_FORBIDDEN"
    posted_forged = form_post(consent, {"v": VERSION, "u": "frank", "h": "00"})
    assert posted_forged.status == 403
    unknown_user = request("GET", consent + "?" + urlencode({"u": "ghost", "h": mac("ghost")}))
    assert unknown_user.status == 404
    unknown_version = request("GET", consent + "?v=9.9")
    assert unknown_version.status == 404 and unknown_version.errcode == "M_NOT_FOUND"
    escaping = request("GET", consent + "?" + urlencode({"v": "../../etc/passwd"}))
    assert escaping.status == 400 and escaping.errcode == "M_INVALID_PARAM"
    missing = form_post(consent, {"u": "frank"})
    assert missing.status == 400 and missing.errcode == "M_MISSING_PARAM"


def test_consent_recorded_for_the_admin_api(server: RunningServer, frank: Session) -> None:
    """The admin API shows the version and time of a registration's consent."""
    session = start(server, "grace")["session"]
    stage(server, session, {"type": RECAPTCHA, "response": SOLVED})
    stage(server, session, {"type": TERMS})
    assert stage(server, session, {"type": DUMMY}).status == 200
    shown = authed(frank, "GET", server.url + "/_synapse/admin/v2/users/@grace:test.localhost")
    assert shown.status == 200, shown.body
    assert shown.json()["consent_version"] == VERSION
    assert isinstance(shown.json()["consent_ts"], int)


def test_policy_path_stays_inside_the_template_directory(tmp_path: Path) -> None:
    """(The version check is what keeps `v` from naming other files.)"""
    from ranvier.services.consent import SAFE_VERSION

    assert SAFE_VERSION.match("1.0") and SAFE_VERSION.match("2024-01_b")
    for bad in ("../x", "..", ".hidden", "a/b", "", "a\\b"):
        assert not SAFE_VERSION.match(bad), bad


def test_jwt_login_is_unknown_without_jwt_config(server: RunningServer) -> None:
    flows = request("GET", server.url + CLIENT + "/login").json()["flows"]
    assert {"type": "org.matrix.login.jwt"} not in flows
    reply = request(
        "POST", server.url + CLIENT + "/login", {"type": "org.matrix.login.jwt", "token": "x.y.z"}
    )
    assert reply.status == 400 and reply.errcode == "M_UNKNOWN"


def sync_invites(server: RunningServer, who: Session) -> dict[str, Any]:
    reply = authed(who, "GET", server.url + CLIENT + "/sync?timeout=0")
    assert reply.status == 200, reply.body
    invites: dict[str, Any] = reply.json().get("rooms", {}).get("invite", {})
    return invites


def test_a_user_without_consent_is_sent_a_server_notice_once(server: RunningServer) -> None:
    heidi = make_admin(server.config_path, "heidi", DEFAULT_PASSWORD)
    invites = sync_invites(server, heidi)
    assert len(invites) == 1, invites
    room_id = next(iter(invites))
    # joining the notices room is allowed before consenting, to read the notice
    joined = authed(heidi, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {})
    assert joined.status == 200, joined.body
    messages = authed(
        heidi, "GET", f"{server.url}{CLIENT}/rooms/{room_id}/messages?dir=b&limit=20"
    ).json()["chunk"]
    notices = [m for m in messages if m["type"] == "m.room.message"]
    assert len(notices) == 1
    link = f"http://{urlparse(server.url).netloc}/_matrix/consent?" + urlencode(
        {"u": "heidi", "h": mac("heidi")}
    )
    assert notices[0]["content"] == {"msgtype": "m.text", "body": NOTICE % {"consent_uri": link}}
    assert notices[0]["sender"] == "@notices:test.localhost"
    # later syncs send nothing more for this version
    sync_invites(server, heidi)
    again = authed(
        heidi, "GET", f"{server.url}{CLIENT}/rooms/{room_id}/messages?dir=b&limit=20"
    ).json()["chunk"]
    assert len([m for m in again if m["type"] == "m.room.message"]) == 1
    # the notice does not stand in for consent: heidi still cannot send elsewhere
    refused = authed(heidi, "POST", server.url + CLIENT + "/createRoom", {})
    assert refused.errcode == "M_CONSENT_NOT_GIVEN"


def test_a_user_who_consented_at_registration_gets_no_notice(server: RunningServer) -> None:
    session = start(server, "ivan")["session"]
    stage(server, session, {"type": RECAPTCHA, "response": SOLVED})
    stage(server, session, {"type": TERMS})
    done = stage(server, session, {"type": DUMMY})
    ivan = Session(done.json()["user_id"], done.json()["access_token"], done.json()["device_id"])
    assert sync_invites(server, ivan) == {}
