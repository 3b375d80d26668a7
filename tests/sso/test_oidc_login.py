"""Signing in through a real OpenID provider (oidc-provider under Node) on loopback, the way
a browser does it, on both engines: the redirect, the provider's sign-in, the callback, the
pages in between, and the login token the client exchanges."""

from __future__ import annotations

import html
import re
import time
import urllib.parse

from tests.integration.client import request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT as API
from tests.integration.matrix import Session, register
from tests.sso.conftest import CLIENT, TRUSTED_CLIENT
from tests.sso.provider import Browser, Page, RunningProvider, login_token_of

SERVER_NAME = "test.localhost"


def start(server: RunningServer, browser: Browser, idp: str | None, client: str = CLIENT) -> Page:
    path = f"{API}/login/sso/redirect" + (f"/{idp}" if idp else "")
    query = urllib.parse.urlencode({"redirectUrl": client})
    return browser.go(f"{server.url}{path}?{query}")


def sign_in(
    server: RunningServer, account: str, idp: str = "oidc-main", client: str = CLIENT
) -> tuple[Browser, Page]:
    """Through the provider as `account`: what the browser ends on after the callback."""
    browser = Browser()
    page = start(server, browser, idp, client)
    assert page.status == 200 and "/interaction/" in page.url, page
    return browser, browser.sign_in_at_provider(page, account)


def token_from_confirmation(page: Page) -> str:
    """The login token behind the redirect confirmation page's link."""
    assert page.status == 200, page.body
    return login_token_of(page.link(r"^http://client\.example/app\?loginToken="))


def log_in_with_token(server: RunningServer, token: str) -> Session:
    reply = request("POST", server.url + API + "/login", {"type": "m.login.token", "token": token})
    assert reply.status == 200, reply.body
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


def whoami(server: RunningServer, session: Session) -> str:
    reply = request("GET", server.url + API + "/account/whoami", headers=session.headers)
    assert reply.status == 200, reply.body
    user_id: str = reply.json()["user_id"]
    return user_id


def displayname(server: RunningServer, user_id: str) -> str | None:
    reply = request("GET", f"{server.url}{API}/profile/{user_id}/displayname")
    if reply.status == 404:
        return None
    assert reply.status == 200, reply.body
    name: str = reply.json()["displayname"]
    return name


def test_login_flows_list_the_providers(server: RunningServer) -> None:
    reply = request("GET", server.url + API + "/login")
    assert reply.status == 200
    flows = {flow["type"]: flow for flow in reply.json()["flows"]}
    assert "m.login.token" in flows
    assert flows["m.login.sso"]["identity_providers"] == [
        {"id": "oidc-main", "name": "Main Provider", "brand": "org.example.main"},
        {"id": "oidc-existing", "name": "Existing Users"},
        {"id": "oidc-formpost", "name": "Form Post"},
    ]


def test_new_user_signs_in_and_comes_back_as_the_same_user(server: RunningServer) -> None:
    _, page = sign_in(server, "alice-sub")
    # a client not in sso.client_whitelist: the user confirms before the token goes there
    assert "client.example/app" in page.body
    token = token_from_confirmation(page)
    session = log_in_with_token(server, token)
    assert whoami(server, session) == f"@alice:{SERVER_NAME}"
    assert displayname(server, session.user_id) == "Alice Liddell"
    # a login token is good once
    reply = request("POST", server.url + API + "/login", {"type": "m.login.token", "token": token})
    assert reply.status == 403 and reply.errcode == "M_FORBIDDEN"

    # again, to a whitelisted client: straight back with a token, for the same user
    browser, page = sign_in(server, "alice-sub", client=TRUSTED_CLIENT + "?keep=1")
    assert browser.arrived_at is not None, page.body
    assert browser.arrived_at.startswith(TRUSTED_CLIENT + "?keep=1&loginToken=")
    again = log_in_with_token(server, login_token_of(browser.arrived_at))
    assert whoami(server, again) == f"@alice:{SERVER_NAME}"
    assert again.device_id != session.device_id


def test_email_template_gives_a_new_user_their_address(server: RunningServer) -> None:
    """email_template's address is the provider's word: bound to the new account (in the
    case Synapse stores it in) and listed by /account/3pid; a value that is no address is left
    out, and the account is made all the same."""
    _, page = sign_in(server, "mailer-sub")
    session = log_in_with_token(server, token_from_confirmation(page))
    reply = request("GET", server.url + API + "/account/3pid", headers=session.headers)
    assert reply.status == 200, reply.body
    assert [(t["medium"], t["address"]) for t in reply.json()["threepids"]] == [
        ("email", "mailer@example.org")
    ]
    _, page = sign_in(server, "badmail-sub")
    other = log_in_with_token(server, token_from_confirmation(page))
    reply = request("GET", server.url + API + "/account/3pid", headers=other.headers)
    assert reply.status == 200 and reply.json()["threepids"] == []
    # users without an email claim got none (the template rendered empty)
    _, page = sign_in(server, "alice-sub")
    alice = log_in_with_token(server, token_from_confirmation(page))
    reply = request("GET", server.url + API + "/account/3pid", headers=alice.headers)
    assert reply.json()["threepids"] == []


def test_several_providers_are_picked_from_a_page(server: RunningServer) -> None:
    browser = Browser()
    page = start(server, browser, None)
    assert page.status == 200 and "/_synapse/client/pick_idp" in page.url
    assert "Main Provider" in page.body and "Existing Users" in page.body
    query = urllib.parse.urlencode({"redirectUrl": CLIENT, "idp": "oidc-main"})
    page = browser.go(f"{server.url}/_synapse/client/pick_idp?{query}")
    assert page.status == 200 and "/interaction/" in page.url
    page = browser.sign_in_at_provider(page, "alice-sub")
    assert whoami(server, log_in_with_token(server, token_from_confirmation(page))) == (
        f"@alice:{SERVER_NAME}"
    )


def test_unknown_provider_and_missing_redirect_are_refused(server: RunningServer) -> None:
    reply = request("GET", f"{server.url}{API}/login/sso/redirect/oidc-nope?redirectUrl={CLIENT}")
    assert reply.status == 404 and reply.errcode == "M_NOT_FOUND"
    reply = request("GET", f"{server.url}{API}/login/sso/redirect/oidc-main")
    assert reply.status == 400 and reply.errcode == "M_MISSING_PARAM"


def test_a_user_without_a_mapped_name_picks_one(server: RunningServer) -> None:
    register(server.url, "taken")
    browser, page = sign_in(server, "nameless-sub")
    assert page.status == 200 and page.url.endswith(
        "/_synapse/client/pick_username/account_details"
    )
    assert "No Name" in page.body

    check = f"{server.url}/_synapse/client/pick_username/check?username="
    assert request("GET", check + "taken").errcode == "M_USER_IN_USE"
    assert request("GET", check + "bad%20name").errcode == "M_INVALID_USERNAME"
    free = request("GET", check + "Nameless")
    assert free.status == 200 and free.json() == {"available": True}

    page = browser.go(page.url, {"username": "taken", "use_display_name": "true"})
    assert page.status == 400 and "taken" in page.body.lower()
    page = browser.go(page.url, {"username": "nameless", "use_display_name": "true"})
    session = log_in_with_token(server, token_from_confirmation(page))
    assert whoami(server, session) == f"@nameless:{SERVER_NAME}"
    assert displayname(server, session.user_id) == "No Name"
    # the picker's session is used up
    assert browser.go(page.url.replace("http://client.example/app", server.url)).status >= 400
    # and the identity is linked: the next sign-in goes straight through
    _, page = sign_in(server, "nameless-sub")
    assert whoami(server, log_in_with_token(server, token_from_confirmation(page))) == (
        f"@nameless:{SERVER_NAME}"
    )


def test_a_taken_name_is_picked_again_unless_existing_users_are_allowed(
    server: RunningServer,
) -> None:
    bob = register(server.url, "bob")
    # `main` does not sign in existing users: the mapped name is taken, so the user picks
    _, page = sign_in(server, "bob-sub", idp="oidc-main")
    assert page.url.endswith("/pick_username/account_details"), page.body
    assert 'value="bob"' in page.body
    # `existing` links the identity to @bob and signs him in
    _, page = sign_in(server, "bob-sub", idp="oidc-existing")
    session = log_in_with_token(server, token_from_confirmation(page))
    assert whoami(server, session) == bob.user_id
    # sso.update_profile_information: the provider's name replaces the one he registered
    assert displayname(server, bob.user_id) == "Bob from SSO"


def test_attribute_requirements_refuse_sign_in(server: RunningServer) -> None:
    _, page = sign_in(server, "outsider-sub", idp="oidc-main")
    assert page.status == 401
    assert "not authorised" in page.body
    assert request("GET", f"{server.url}{API}/profile/@outsider:{SERVER_NAME}").status == 404


def _code_and_state(
    server: RunningServer, browser: Browser, account: str, idp: str = "oidc-main"
) -> dict[str, str]:
    """Sign in at the provider but stop before the homeserver's callback: its query."""
    page = start(server, browser, idp)
    action = re.search(r'action="([^"]+)"', page.body)
    assert action is not None
    # one step at a time, so the callback is not followed
    url = urllib.parse.urljoin(page.url, action.group(1))
    status, url, headers, _ = browser._open("POST", url, {"account": account})
    while status in (302, 303):
        target = urllib.parse.urljoin(url, headers["Location"])
        if "/_synapse/client/oidc/callback" in target:
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query))
        status, url, headers, _ = browser._open("GET", target, None)
    raise AssertionError("the provider did not send the browser back")


def test_wrong_state_and_replayed_callbacks_are_refused(server: RunningServer) -> None:
    browser = Browser()
    answer = _code_and_state(server, browser, "alice-sub")
    callback = f"{server.url}/_synapse/client/oidc/callback?"
    # no session cookie: another browser
    page = Browser().go(callback + urllib.parse.urlencode(answer))
    assert page.status == 400 and "missing_session" in page.body
    forged = {**answer, "state": "not-the-state"}
    page = browser.go(callback + urllib.parse.urlencode(forged))
    assert page.status == 400 and "mismatching_state" in page.body
    # the failed attempt used the session up: the genuine answer cannot follow it
    page = browser.go(callback + urllib.parse.urlencode(answer))
    assert page.status == 400 and "unknown_session" in page.body


def _inject(server: RunningServer, idp: str) -> Page:
    """An attacker's code slipped into a victim's sign-in, with the victim's state."""
    victim, attacker = Browser(), Browser()
    victim_answer = _code_and_state(server, victim, "alice-sub", idp)
    attacker_answer = _code_and_state(server, attacker, "outsider-sub", idp)
    injected = {**attacker_answer, "state": victim_answer["state"]}
    return victim.go(
        f"{server.url}/_synapse/client/oidc/callback?" + urllib.parse.urlencode(injected)
    )


def test_a_code_from_another_sign_in_is_refused(server: RunningServer) -> None:
    # with PKCE (`main`), the provider refuses the code: its challenge was the attacker's
    page = _inject(server, "oidc-main")
    assert page.status == 400 and "token_request_failed" in page.body, page.body
    # without (`existing`, pkce_method: never), the ID token carries the attacker's nonce
    page = _inject(server, "oidc-existing")
    assert page.status == 400 and "invalid_token" in page.body, page.body


def test_profile_information_is_updated_on_sign_in(
    server: RunningServer, provider: RunningProvider
) -> None:
    _, page = sign_in(server, "renamed-sub")
    user_id = log_in_with_token(server, token_from_confirmation(page)).user_id
    assert displayname(server, user_id) == "First Name"
    provider.set_claims("renamed-sub", {"name": "Second Name"})
    _, page = sign_in(server, "renamed-sub")
    log_in_with_token(server, token_from_confirmation(page))
    assert displayname(server, user_id) == "Second Name"


def test_user_interactive_auth_through_single_sign_on(server: RunningServer) -> None:
    _, page = sign_in(server, "alice-sub")
    alice = log_in_with_token(server, token_from_confirmation(page))
    _, page = sign_in(server, "alice-sub")
    spare = log_in_with_token(server, token_from_confirmation(page))
    device_url = f"{server.url}{API}/devices/{spare.device_id}"
    # another user who signs in through the same provider
    sign_in(server, "renamed-sub")

    reply = request("DELETE", device_url, {}, alice.headers)
    assert reply.status == 401
    challenge = reply.json()
    # alice has no password: single sign-on is the one way offered to her
    assert challenge["flows"] == [{"stages": ["m.login.sso"]}]
    session_id = challenge["session"]
    # naming the stage before going through the provider is refused, inside the 401
    reply = request(
        "DELETE",
        device_url,
        {"auth": {"type": "m.login.sso", "session": session_id}},
        alice.headers,
    )
    assert reply.status == 401 and reply.json()["errcode"] == "M_FORBIDDEN"

    fallback = f"{server.url}{API}/auth/m.login.sso/fallback/web?session={session_id}"
    # someone else's identity does not complete alice's stage
    intruder = Browser()
    page = intruder.go(fallback)
    page = intruder.go(page.link(r"idp=oidc-main"))
    page = intruder.sign_in_at_provider(page, "renamed-sub")
    assert page.status == 403 and "wrong_user" in page.body
    reply = request("DELETE", device_url, {"auth": {"session": session_id}}, alice.headers)
    assert reply.status == 401 and reply.json()["completed"] == []

    browser = Browser()
    page = browser.go(fallback)
    assert page.status == 200 and "Main Provider" in page.body
    page = browser.go(page.link(r"idp=oidc-main"))
    page = browser.sign_in_at_provider(page, "alice-sub")
    assert page.status == 200 and "authDone" in page.body, page.body

    reply = request("DELETE", device_url, {"auth": {"session": session_id}}, alice.headers)
    assert reply.status == 200, reply.body
    gone = request("GET", f"{server.url}{API}/account/whoami", headers=spare.headers)
    assert gone.status == 401


def test_the_callback_may_be_a_form_post(server: RunningServer) -> None:
    # an identity no other test signs in with at another provider, whose name is free
    browser, page = sign_in(server, "poster-sub", idp="oidc-formpost")
    # the provider's page posts the answer to the callback with a script; post it by hand
    action = re.search(r'<form[^>]*action="([^"]+)"', page.body)
    assert action is not None and "/_synapse/client/oidc/callback" in action.group(1), page.body
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.body))
    assert "code" in fields and "state" in fields, page.body
    page = browser.go(html.unescape(action.group(1)), fields)
    session = log_in_with_token(server, token_from_confirmation(page))
    assert whoami(server, session) == f"@poster:{SERVER_NAME}"


def test_back_channel_logout_ends_the_provider_sessions_devices(
    server: RunningServer, provider: RunningProvider
) -> None:
    browser, page = sign_in(server, "alice-sub")
    signed_in = log_in_with_token(server, token_from_confirmation(page))
    _, page = sign_in(server, "alice-sub")
    other_session = log_in_with_token(server, token_from_confirmation(page))

    # the user signs out at the provider, in the first browser only
    page = browser.go(f"{provider.issuer}/session/end")
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.body))
    action = re.search(r'<form[^>]*action="([^"]+)"', page.body)
    assert action is not None and "xsrf" in form, page.body
    browser.go(urllib.parse.urljoin(page.url, action.group(1)), {**form, "logout": "yes"})

    deadline = time.monotonic() + 10
    while whoami_status(server, signed_in) != 401:
        assert time.monotonic() < deadline, "the device signed in through the session stayed"
        time.sleep(0.1)
    # the other browser's session at the provider, and its device, are untouched
    assert whoami_status(server, other_session) == 200


def test_a_bad_logout_token_is_refused(server: RunningServer) -> None:
    url = f"{server.url}/_synapse/client/oidc/backchannel_logout"
    reply = request(
        "POST",
        url,
        b"logout_token=not.a.token",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 400 and reply.json()["error"] == "invalid_request"
    reply = request("POST", url, b"", {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 400 and "logout_token" in reply.json()["error_description"]


def whoami_status(server: RunningServer, session: Session) -> int:
    return request("GET", server.url + API + "/account/whoami", headers=session.headers).status


def test_a_user_without_a_linked_identity_is_offered_the_password_only(
    server: RunningServer,
) -> None:
    frank = register(server.url, "frank")
    reply = request("DELETE", f"{server.url}{API}/devices/{frank.device_id}", {}, frank.headers)
    assert reply.status == 401
    assert reply.json()["flows"] == [{"stages": ["m.login.password"]}]
