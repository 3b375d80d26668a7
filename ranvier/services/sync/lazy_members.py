"""Which membership events a lazy-loading device already holds, by the sync token it
was given them with.

spec ("Lazy-loading room members"): the server MAY assume a client remembers the
membership events it was sent and skip those that have not changed, unless the filter
sets `include_redundant_members`. What a device holds is remembered per token the server
returned, not per device: a client that retries an older token (its answer was lost) is
judged by what it held then, and a token this process never returned (a restart, an
evicted device, a token too old) holds nothing, so every member is sent again. Sending a
member twice is harmless; leaving one out is not.

Memory: at most MAX_DEVICES devices (least recently synced dropped first), each with its
last TOKENS_PER_DEVICE tokens, each holding at most MAX_HELD_EVENTS event IDs (the least
recently sent dropped first). A token's IDs are shared with the one it grew from, so a
device costs about MAX_HELD_EVENTS strings plus three tables: under 0.2 MB, and 2,000
devices under 400 MB in the worst case (a few MB for typical rooms).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cachetools import LRUCache

MAX_DEVICES = 2_000
TOKENS_PER_DEVICE = 3
MAX_HELD_EVENTS = 500

# an insertion-ordered set of membership event IDs, never changed once stored
Held = Mapping[str, None]
_NOTHING: Held = {}


class LazyMemberMemory:
    def __init__(
        self,
        max_devices: int = MAX_DEVICES,
        tokens_per_device: int = TOKENS_PER_DEVICE,
        max_held_events: int = MAX_HELD_EVENTS,
    ) -> None:
        self._tokens_per_device = tokens_per_device
        self._max_held_events = max_held_events
        # (user_id, device_id) -> sync token returned -> the membership event IDs the
        # device held once it had that response, oldest token first
        self._device_to_token_held: LRUCache[tuple[str, str | None], dict[str, Held]] = LRUCache(
            max_devices
        )

    def held(self, user_id: str, device_id: str | None, token: str) -> Held | None:
        """What the device held after the response that returned `token`; None when the
        token is not remembered (then nothing may be skipped)."""
        tokens = self._device_to_token_held.get((user_id, device_id))
        return None if tokens is None else tokens.get(token)

    def remember(
        self,
        user_id: str,
        device_id: str | None,
        since: str | None,
        token: str,
        sent: Iterable[str],
    ) -> None:
        """The response to a sync from `since` returned `token` and carried the membership
        events `sent`."""
        key = (user_id, device_id)
        base = (None if since is None else self.held(user_id, device_id, since)) or _NOTHING
        new = [event_id for event_id in dict.fromkeys(sent) if event_id not in base]
        held: Held = base
        if new:
            grown = dict(base)
            grown.update(dict.fromkeys(new))
            for event_id in list(grown)[: max(0, len(grown) - self._max_held_events)]:
                del grown[event_id]
            held = grown
        tokens = self._device_to_token_held.get(key)
        if tokens is None:
            tokens = {}
            self._device_to_token_held[key] = tokens
        earlier = tokens.pop(token, None)
        if earlier is not None and earlier is not held:
            # two requests (another tab, a retry from an older token) were answered with
            # the same token: the device holds only what both answers gave it
            held = {event_id: None for event_id in held if event_id in earlier}
        tokens[token] = held
        while len(tokens) > self._tokens_per_device:
            del tokens[next(iter(tokens))]
