"""What a stream writer needs of the notifier: a way to say "position N of this stream is
readable now, and these rooms and users care". `ranvier.streams.notifier.Notifier.notify`
is one; tests may pass a plain function."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Notify(Protocol):
    def __call__(
        self, stream: str, position: int, *, rooms: Iterable[str] = (), users: Iterable[str] = ()
    ) -> None: ...


def notify_nobody(
    stream: str, position: int, *, rooms: Iterable[str] = (), users: Iterable[str] = ()
) -> None:
    """For processes without long-polls to wake (command-line tools)."""
