"""The media store on disk without a server: files named by their hash, written whole or
not at all, and the per-hash locks that order writes against removals."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ranvier.errors import MatrixError
from ranvier.services.media.files import KeyedLocks, MediaFiles


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_a_received_file_goes_in_place_under_its_hash(tmp_path: Path) -> None:
    files = MediaFiles(tmp_path)
    received = await files.receive(chunks(b"hello ", b"world"), limit=100)
    sha256 = hashlib.sha256(b"hello world").hexdigest()
    assert (received.sha256, received.length) == (sha256, 11)
    assert not files.exists(sha256)
    await files.commit(received)
    assert files.path_for(sha256).read_bytes() == b"hello world"
    assert files.path_for(sha256).relative_to(tmp_path).parts[:3] == (
        "content",
        sha256[:2],
        sha256[2:4],
    )
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_a_stream_over_the_limit_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    files = MediaFiles(tmp_path)
    with pytest.raises(MatrixError) as refused:
        await files.receive(chunks(b"x" * 60, b"x" * 60, b"never read"), limit=100)
    assert (refused.value.status, refused.value.errcode) == (413, "M_TOO_LARGE")
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "content").rglob("*")) == []


async def test_keyed_locks_exclude_per_key_and_are_dropped_when_unused() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    order: list[str] = []

    async def work(key: str, name: str, pause: float) -> None:
        async with locks.hold(key):
            order.append(f"{name} in")
            await asyncio.sleep(pause)
            order.append(f"{name} out")

    await asyncio.gather(work("a", "1", 0.02), work("a", "2", 0), work("a", "3", 0))
    assert order == ["1 in", "1 out", "2 in", "2 out", "3 in", "3 out"]
    order.clear()
    await asyncio.gather(work("a", "1", 0.02), work("b", "2", 0))
    assert order == ["1 in", "2 in", "2 out", "1 out"]
    assert locks._locks == {}
