"""The media store on disk: files named by the SHA-256 of their bytes, under
`media_store_path`, so identical uploads share one file.

Files are written to a temporary file in the store and moved into place with os.replace,
so a reader never sees half a file and a crash leaves at most a stray temporary file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from ranvier.errors import MatrixError


def upload_too_large(limit: int) -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", f"Cannot upload files larger than {limit} bytes")


K = TypeVar("K", bound=Hashable)


class KeyedLocks(Generic[K]):
    """One asyncio lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[K, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: K) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


@dataclass(frozen=True)
class ReceivedFile:
    """Bytes written to a temporary file in the store, not yet in place (see `commit`)."""

    tmp_path: str
    sha256: str
    length: int


class MediaFiles:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._content = self.root / "content"
        self._tmp = self.root / "tmp"
        # one lock per hash: putting a file in place and recording its use must not
        # interleave with removing that file because nothing used it a moment ago
        self._locks: KeyedLocks[str] = KeyedLocks()

    def prepare(self) -> None:
        self._content.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        # two levels of two hex digits keep directories small
        return self._content / sha256[:2] / sha256[2:4] / sha256

    def locked(self, sha256: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(sha256)

    async def receive(self, chunks: AsyncIterator[bytes], limit: int) -> ReceivedFile:
        """Write what `chunks` yields to a temporary file; 413 M_TOO_LARGE as soon as it
        passes `limit` bytes (the partial file is removed)."""
        self.prepare()
        digest = hashlib.sha256()
        length = 0
        handle, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                async for chunk in chunks:
                    length += len(chunk)
                    if length > limit:
                        raise upload_too_large(limit)
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            _unlink(tmp_name)
            raise
        return ReceivedFile(tmp_name, digest.hexdigest(), length)

    async def receive_bytes(self, data: bytes) -> ReceivedFile:
        return await asyncio.to_thread(self._receive_bytes, data)

    def _receive_bytes(self, data: bytes) -> ReceivedFile:
        self.prepare()
        handle, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="write-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
        except BaseException:
            _unlink(tmp_name)
            raise
        return ReceivedFile(tmp_name, hashlib.sha256(data).hexdigest(), len(data))

    async def commit(self, received: ReceivedFile) -> None:
        """Move a received file into place under its hash (hold `locked(sha256)`)."""
        await asyncio.to_thread(self._move_into_place, received)

    def _move_into_place(self, received: ReceivedFile) -> None:
        target = self.path_for(received.sha256)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # identical bytes may be there already; replacing them with the same is harmless
            os.replace(received.tmp_path, target)
        except BaseException:
            _unlink(received.tmp_path)
            raise

    def discard(self, received: ReceivedFile) -> None:
        _unlink(received.tmp_path)

    def remove(self, sha256: str) -> None:
        """Remove a file (hold `locked(sha256)` and know that nothing uses it)."""
        _unlink(str(self.path_for(sha256)))

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()


def _unlink(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)
