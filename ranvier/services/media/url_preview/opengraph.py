"""HTML to OpenGraph (https://ogp.me/): pure functions over the fetched bytes.

The page's own `og:` tags win; a page without them still gets a title (`<title>`, then the
first heading), a description (`<meta name="description">`, then the first paragraph) and
an image (the first `<img>`). Parsing uses the standard library's tolerant HTML tokenizer.
"""

from __future__ import annotations

import codecs
from html.parser import HTMLParser
from urllib.parse import urljoin

OpenGraph = dict[str, str | int]

# Synapse drops tags with longer names or values rather than truncating them
MAX_TAG_NAME = 50
MAX_TAG_VALUE = 1000
MAX_DESCRIPTION_FALLBACK = 500
# the HTML standard's prescan for <meta charset> looks at the first 1024 bytes
CHARSET_PRESCAN_BYTES = 1024

_SKIPPED_TEXT = {"script", "style", "noscript", "template", "svg"}
_HEADINGS = ("h1", "h2", "h3")


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return _known_codec(value.strip().strip("'\""))
    return None


def _known_codec(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


class _MetaCharset(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.charset: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta" or self.charset is not None:
            return
        values = {name.lower(): value or "" for name, value in attrs}
        if "charset" in values:
            self.charset = _known_codec(values["charset"].strip())
        elif values.get("http-equiv", "").lower() == "content-type":
            self.charset = charset_from_content_type(values.get("content"))


def decode_html(body: bytes, content_type: str | None) -> str:
    """The page as text: the charset from the Content-Type header, a byte order mark,
    `<meta charset>` / `<meta http-equiv=Content-Type>`, else UTF-8 (bad bytes replaced)."""
    charset = charset_from_content_type(content_type)
    if charset is None:
        for bom, name in (
            (codecs.BOM_UTF8, "utf-8-sig"),
            (codecs.BOM_UTF16_LE, "utf-16"),
            (codecs.BOM_UTF16_BE, "utf-16"),
        ):
            if body.startswith(bom):
                charset = name
                break
    if charset is None:
        prescan = _MetaCharset()
        prescan.feed(body[:CHARSET_PRESCAN_BYTES].decode("ascii", errors="replace"))
        charset = prescan.charset
    if charset is None:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            # most pages that are not UTF-8 and do not say so are Windows-1252
            charset = "cp1252"
    return body.decode(charset, errors="replace")


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: str | None = None
        self.heading: str | None = None
        self.paragraph: str | None = None
        self.image: str | None = None
        self._open: list[str] = []
        self._text: dict[str, list[str]] = {}
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value for name, value in attrs if value is not None}
        if tag == "meta":
            key = values.get("property") or values.get("name")
            content = values.get("content")
            # first one wins: for og:image the first is the page's main image (ogp.me arrays)
            if key and content is not None and key not in self.meta:
                self.meta[key.strip()] = content
            return
        if tag == "img":
            src = values.get("src")
            if src and self.image is None and not src.startswith("data:"):
                self.image = src
            return
        if tag in _SKIPPED_TEXT:
            self._skipping += 1
            return
        if tag == "title" and self.title is None:
            self._start_text(tag)
        elif tag in _HEADINGS and self.heading is None:
            self._start_text("heading")
        elif tag == "p" and self.paragraph is None:
            self._start_text(tag)

    def _start_text(self, name: str) -> None:
        if name not in self._text:
            self._text[name] = []
            self._open.append(name)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TEXT:
            self._skipping = max(0, self._skipping - 1)
            return
        name = "heading" if tag in _HEADINGS else tag
        if name in self._open:
            self._open.remove(name)
            text = _squash("".join(self._text[name]))
            if name == "title":
                self.title = text or None
            elif name == "heading":
                self.heading = text or None
            elif name == "p" and text:
                self.paragraph = text
            if not text:
                # an empty element: let a later one of its kind supply the text
                del self._text[name]

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        for name in self._open:
            self._text[name].append(data)


def _squash(text: str) -> str:
    return " ".join(text.split())


def parse_open_graph(html: str, page_url: str) -> OpenGraph:
    """The page's OpenGraph tags, with fallbacks; `og:image` made absolute against
    `page_url` (the URL the page was finally fetched from)."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    og: OpenGraph = {
        key: value for key, value in parser.meta.items() if key.startswith("og:") and value
    }
    if "og:title" not in og:
        title = parser.meta.get("twitter:title") or parser.title or parser.heading
        if title:
            og["og:title"] = _squash(title)
    if "og:description" not in og:
        description = (
            parser.meta.get("description")
            or parser.meta.get("twitter:description")
            or parser.paragraph
        )
        if description:
            og["og:description"] = _squash(description)[:MAX_DESCRIPTION_FALLBACK]
    if "og:image" not in og:
        image = parser.meta.get("twitter:image") or parser.image
        if image:
            og["og:image"] = image
    image_url = og.get("og:image")
    if isinstance(image_url, str):
        og["og:image"] = urljoin(page_url, image_url.strip())
    return {
        key: value
        for key, value in og.items()
        if len(key) <= MAX_TAG_NAME and len(str(value)) <= MAX_TAG_VALUE
    }
