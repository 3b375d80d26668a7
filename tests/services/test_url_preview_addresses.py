"""Which addresses URL previews may reach, which URLs the admin's patterns refuse, and
what a page's OpenGraph answer is: the pure parts of URL previews."""

from __future__ import annotations

import ipaddress

import pytest

from ranvier.config.generate import SYNAPSE_IP_RANGE_BLACKLIST
from ranvier.protocol.ip_addresses import (
    AddressPolicy,
    address_forms,
    connectable_address,
    fold_host,
    parse_ip_literal,
)
from ranvier.services.media.url_preview.opengraph import (
    charset_from_content_type,
    decode_html,
    parse_open_graph,
)
from ranvier.services.media.url_preview.service import UrlPatterns

DEFAULTS = AddressPolicy.from_config(SYNAPSE_IP_RANGE_BLACKLIST)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.9.8.7",
        "[::1]",
        "::1",
        "::ffff:127.0.0.1",
        "[::ffff:7f00:1]",
        "::127.0.0.1",  # IPv4-compatible
        "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "100.64.0.1",
        "fe80::1",
        "fe80::1%eth0",
        "fd00::1",
        "224.0.0.1",
        "0.0.0.0",
        "::",
        # legacy spellings resolvers accept
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "127.0.0.1.",
    ],
)
def test_defaults_block_private_loopback_and_link_local_in_every_spelling(host: str) -> None:
    address = parse_ip_literal(host)
    assert address is not None, host
    assert DEFAULTS.is_blocked(address)


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "[2001:4860::8888]"]
)
def test_public_addresses_pass(host: str) -> None:
    address = parse_ip_literal(host)
    assert address is not None
    assert not DEFAULTS.is_blocked(address)


@pytest.mark.parametrize("host", ["example.com", "localhost", "xn--nxa.example", "1.2.3.example"])
def test_names_are_not_ip_literals(host: str) -> None:
    assert parse_ip_literal(host) is None


def in_digits(text: str, zero: int) -> str:
    """`text` with its ASCII digits written in the Unicode digits whose zero is `zero`."""
    return "".join(chr(zero + int(char)) if char.isdigit() else char for char in text)


@pytest.mark.parametrize(
    "host",
    [
        in_digits("127.0.0.1", 0xFF10).replace(".", "\uff0e"),  # fullwidth digits and stops
        "127.0.0.1".replace(".", "\u3002"),  # ideographic full stop
        "127.0.0.1".replace(".", "\uff61"),  # halfwidth ideographic full stop
        in_digits("127.0.0.1", 0x0660),  # Arabic-Indic
        in_digits("127.0.0.1", 0x06F0),  # extended Arabic-Indic
        in_digits("127.0.0.1", 0x0966),  # Devanagari
        in_digits("127.0.0.1", 0x1D7CE),  # mathematical bold
        "\u2460\u2461\u2466.0.0.1",  # circled
        in_digits("127", 0xFF10) + "\u3002" + in_digits("0", 0x0660) + ".0\uff0e1",
        in_digits("2130706433", 0xFF10),
        in_digits("0x7f.1", 0xFF10).upper(),
        "%31%32%37.0.0.1",
        "[::FFFF:127.0.0.1]",
        "0177.1",
        "127.0.0.1..",
    ],
)
def test_unicode_and_escaped_spellings_of_loopback_read_as_loopback(host: str) -> None:
    address = parse_ip_literal(host)
    assert address is not None, host
    assert DEFAULTS.is_blocked(address)
    assert 127 in {int(form) >> 24 for form in address_forms(address) if form.version == 4}


def test_folding_makes_digits_dots_and_case_ascii_and_leaves_names_names() -> None:
    assert fold_host(in_digits("10.1", 0x0660)) == "10.1"
    assert fold_host("\uff25xample\u3002ORG") == "example.org"
    assert parse_ip_literal("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com") is None
    assert parse_ip_literal(in_digits("127", 0x0660) + ".example") is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
    ],
)
def test_a_socket_address_is_read_only_in_its_plain_numeric_forms(host: str, address: str) -> None:
    assert connectable_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "127.1",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "localhost",
        "[::1]",
        " 127.0.0.1",
        "",
        in_digits("127.0.0.1", 0xFF10),
        b"\x7f\x00\x00\x01",  # bytes would be a name to connect(), four packed bytes to ipaddress
        None,
        2130706433,
    ],
)
def test_anything_a_connect_call_might_resolve_is_not_a_socket_address(host: object) -> None:
    assert connectable_address(host) is None
    assert DEFAULTS.is_blocked_text(host)
    assert AddressPolicy.from_config([]).is_blocked_text(host)


def test_even_an_empty_blacklist_blocks_the_any_addresses() -> None:
    policy = AddressPolicy.from_config([])
    assert policy.is_blocked(ipaddress.ip_address("0.0.0.0"))
    assert policy.is_blocked(ipaddress.ip_address("::"))
    assert not policy.is_blocked(ipaddress.ip_address("127.0.0.1"))


def test_whitelist_reopens_part_of_the_blacklist_in_every_form() -> None:
    policy = AddressPolicy.from_config(["127.0.0.0/8", "::1/128"], ["127.0.0.2/32"])
    assert not policy.is_blocked(ipaddress.ip_address("127.0.0.2"))
    assert not policy.is_blocked(ipaddress.ip_address("::ffff:127.0.0.2"))
    assert policy.is_blocked(ipaddress.ip_address("127.0.0.1"))
    assert policy.is_blocked(ipaddress.ip_address("::ffff:127.0.0.3"))
    assert policy.is_blocked(ipaddress.ip_address("::1"))


def test_an_unparseable_resolver_answer_is_refused() -> None:
    assert DEFAULTS.is_blocked_text("not an address")
    assert not DEFAULTS.is_blocked_text("93.184.216.34")


def test_address_forms_unwrap_embedded_ipv4() -> None:
    forms = {str(form) for form in address_forms(ipaddress.ip_address("::ffff:10.1.2.3"))}
    assert "10.1.2.3" in forms
    assert address_forms(ipaddress.ip_address("::1")) == [ipaddress.ip_address("::1")]


def test_url_patterns_need_every_component_of_an_entry_to_match() -> None:
    patterns = UrlPatterns(
        [
            {"netloc": "google.com"},
            {"netloc": "*.google.com"},
            {"scheme": "http"},
            {"netloc": "^(?:.*\\.)?example\\.org$", "path": "/private/*"},
            {"hostname": "docs.test", "port": "8443"},
        ]
    )
    assert patterns.refuses("https://google.com/search")
    assert patterns.refuses("https://mail.google.com/")
    assert patterns.refuses("http://anything.test/")
    assert patterns.refuses("https://www.example.org/private/doc")
    assert not patterns.refuses("https://www.example.org/public/doc")
    assert not patterns.refuses("https://notexample.org/private/x")
    assert patterns.refuses("https://docs.test:8443/a")
    assert not patterns.refuses("https://docs.test/a")
    assert not patterns.refuses("https://matrix.org/")


def test_charset_comes_from_header_then_bom_then_meta() -> None:
    assert charset_from_content_type("text/html; charset=ISO-8859-1") == "iso8859-1"
    assert charset_from_content_type("text/html; charset=bogus") is None
    latin = "<title>caf\xe9</title>".encode("latin-1")
    assert "café" in decode_html(latin, "text/html; charset=latin-1")
    assert "café" in decode_html(b'<meta charset="windows-1252">' + latin, "text/html")
    assert "café" in decode_html(
        b'<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">' + latin,
        None,
    )
    assert "café" in decode_html(b"\xef\xbb\xbf<title>caf\xc3\xa9</title>", None)
    # unlabelled and not UTF-8: read as Windows-1252 rather than failing
    assert "café" in decode_html(latin, "text/html")


def test_open_graph_tags_win_and_image_is_made_absolute() -> None:
    og = parse_open_graph(
        """<html><head><title>Page title</title>
        <meta property="og:title" content="OG title">
        <meta property="og:description" content="OG description">
        <meta property="og:image" content="/img/main.png">
        <meta property="og:image" content="/img/second.png">
        <meta property="og:type" content="article">
        </head><body><img src="other.png"></body></html>""",
        "https://site.test/blog/post",
    )
    assert og == {
        "og:title": "OG title",
        "og:description": "OG description",
        "og:image": "https://site.test/img/main.png",
        "og:type": "article",
    }


def test_fallbacks_title_meta_description_and_first_image() -> None:
    og = parse_open_graph(
        """<html><head><title>
           Plain   title </title>
        <meta name="description" content="Meta description">
        <script>document.title = "<title>not this</title>"</script>
        </head><body><h1>Heading</h1><p>Para</p><img src="pics/a.jpg"><img src="b.jpg">
        </body></html>""",
        "https://site.test/dir/page.html",
    )
    assert og == {
        "og:title": "Plain title",
        "og:description": "Meta description",
        "og:image": "https://site.test/dir/pics/a.jpg",
    }


def test_fallbacks_heading_and_first_paragraph() -> None:
    og = parse_open_graph(
        "<body><h2>The <em>heading</em></h2><p> </p><p>First   words\nhere.</p></body>",
        "https://site.test/",
    )
    assert og == {"og:title": "The heading", "og:description": "First words here."}


def test_overlong_values_are_dropped_and_empty_pages_give_nothing() -> None:
    og = parse_open_graph(
        f'<meta property="og:title" content="{"x" * 1001}"><title>short</title>', "https://a.test/"
    )
    assert og == {}
    assert parse_open_graph("", "https://a.test/") == {}
    assert parse_open_graph("<<<>>> not really html", "https://a.test/") == {}
