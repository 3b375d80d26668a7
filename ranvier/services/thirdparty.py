"""Third-party networks (spec: client-server-api "Third-party Networks"): the protocols the
server's bridges speak, and lookups of users and locations on those networks.

Application services answer all of it (Synapse asks each service that declares the
protocol). Until they arrive (issue 19) the server has none, so it knows no protocol and
finds nothing; this class is where their answers will be gathered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

JsonDict = dict[str, Any]

# what a lookup looks for: the spec's /thirdparty/user and /thirdparty/location
EntityKind = Literal["user", "location"]


class ThirdPartyLookup:
    async def protocols(self) -> dict[str, JsonDict]:
        """Protocol name -> its metadata, for every protocol a bridge here speaks."""
        return {}

    async def query(
        self, kind: EntityKind, protocol: str | None, fields: Mapping[str, Sequence[str]]
    ) -> list[JsonDict]:
        """The users or locations matching `fields`: on one protocol's network, or with
        `protocol` None, the reverse lookup (the `alias` or `userid` field) on every one."""
        return []
