"""The URL preview cache on both engines: answers as of a time, expiry, long URLs."""

from __future__ import annotations

import secrets

from ranvier.storage.database import Database
from ranvier.storage.url_previews import CachedPreview, UrlPreviewStore

NOW = 1_700_000_000_000
HOUR = 3_600_000


def cached(url: str, download_ts: int, og: str, expires_in: int = HOUR) -> CachedPreview:
    return CachedPreview(
        url=url,
        download_ts=download_ts,
        expires_ts=download_ts + expires_in,
        response_code=200,
        etag=None,
        og=og,
        media_id=None,
    )


async def test_the_answer_as_of_a_time_or_the_oldest_after_it(database: Database) -> None:
    store = UrlPreviewStore(database)
    url = "https://site.test/page"
    assert await store.get_preview(url, NOW) is None
    await store.store_preview(cached(url, NOW, '{"og:title":"first"}'))
    await store.store_preview(cached(url, NOW + 1000, '{"og:title":"second"}'))
    as_of = await store.get_preview(url, NOW + 500)
    assert as_of is not None and as_of.og == '{"og:title":"first"}'
    latest = await store.get_preview(url, NOW + 5000)
    assert latest is not None and latest.og == '{"og:title":"second"}'
    # before anything was fetched: the oldest answer (a server may answer a newer one)
    oldest = await store.get_preview(url, NOW - HOUR)
    assert oldest is not None and oldest.og == '{"og:title":"first"}'
    assert await store.get_preview("https://site.test/other", NOW) is None


async def test_storing_drops_answers_expired_before_it(database: Database) -> None:
    store = UrlPreviewStore(database)
    await store.store_preview(cached("https://a.test/", NOW, "{}", expires_in=10))
    await store.store_preview(cached("https://b.test/", NOW, "{}", expires_in=HOUR))
    await store.store_preview(cached("https://c.test/", NOW + 100, "{}"))
    assert await store.get_preview("https://a.test/", NOW) is None
    assert await store.get_preview("https://b.test/", NOW) is not None


async def test_the_same_url_twice_in_one_millisecond_keeps_one(database: Database) -> None:
    store = UrlPreviewStore(database)
    await store.store_preview(cached("https://a.test/", NOW, '{"n":1}'))
    await store.store_preview(cached("https://a.test/", NOW, '{"n":2}'))
    found = await store.get_preview("https://a.test/", NOW)
    assert found is not None and found.og == '{"n":1}'


async def test_very_long_urls_are_kept(database: Database) -> None:
    store = UrlPreviewStore(database)
    # beyond what a PostgreSQL index entry holds, even compressed
    url = "https://site.test/?q=" + secrets.token_hex(10_000)
    await store.store_preview(cached(url, NOW, '{"og:title":"long"}'))
    found = await store.get_preview(url, NOW)
    assert found is not None and found.url == url
