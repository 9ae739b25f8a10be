"""Who holds a token: asked of the Hub (``GET /hub/api/user``), remembered briefly.

Answers are cached under the token's sha256, never the token itself, so a memory
dump or a log line cannot leak it. Only positive answers are cached: a token the Hub
refused is asked about again next time.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp


class InvalidToken(Exception):
    """The Hub does not accept the token (401/403)."""


class HubUnavailable(Exception):
    """The Hub could not be asked (connection problem, timeout, 5xx): try again later."""


@dataclass(frozen=True)
class TokenOwner:
    """What the Hub says about a token: the owner's name and kind (``user``, ``service``)."""

    name: str
    kind: str


class TokenVerifier:
    """Resolves tokens to their owner through the Hub, with a short positive cache."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        hub_api_url: str,
        *,
        ttl_seconds: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = f"{hub_api_url.rstrip('/')}/user"
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, TokenOwner]] = OrderedDict()

    @staticmethod
    def cache_key(token: str) -> str:
        """The key a token's answer is cached under (its sha256)."""
        return hashlib.sha256(token.encode()).hexdigest()

    async def owner(self, token: str) -> TokenOwner:
        """The token's owner; raises InvalidToken or HubUnavailable."""
        key = self.cache_key(token)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        owner = await self._ask_hub(token)
        self._cache[key] = (now + self._ttl, owner)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return owner

    async def _ask_hub(self, token: str) -> TokenOwner:
        try:
            async with self._session.get(
                self._url, headers={"Authorization": f"token {token}"}, allow_redirects=False
            ) as response:
                if response.status in (401, 403):
                    raise InvalidToken(f"the Hub refused the token (HTTP {response.status})")
                if response.status != 200:
                    raise HubUnavailable(f"the Hub answered HTTP {response.status}")
                model = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HubUnavailable(f"the Hub is unreachable: {type(exc).__name__}") from exc
        name = model.get("name") if isinstance(model, dict) else None
        if not isinstance(name, str):
            raise HubUnavailable("the Hub's answer has no owner name")
        return TokenOwner(name=name, kind=str(model.get("kind", "user")))
