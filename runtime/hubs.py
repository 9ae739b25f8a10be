"""Several JupyterHubs behind one command API: what each is, and which one a user is on.

A deployment names its Hubs in ``ORCH_HUBS`` (JSON, see :class:`HubSpec`); without it
there is one Hub, ``default``, made of the single-Hub settings. A new user is placed by
weighted rendezvous hashing (highest random weight, the logarithmic method) over the
Hubs that take new users: each Hub's score for a user is ``-weight / ln(u)`` with ``u``
a uniform number in (0, 1) drawn from a hash of the Hub and the user, and the highest
score wins. Every process computes the same answer, and a Hub's share of new users is
its share of the total weight. The placement is stored when a user is first seen and
never computed again for that user (sticky): adding a Hub moves nobody, it only takes
its share of the users who come after.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_HUB = "default"
HUB_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"


class HubSpec(BaseModel):
    """One JupyterHub: where its API and its public pages are, the orchestrator
    service's token there, its share of new users and how many spawns it takes at once
    (keep ``spawn_limit`` at or below its ``concurrent_spawn_limit``: then it never
    answers 429)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=HUB_NAME_PATTERN)
    api_url: str = ""
    public_url: str
    token: SecretStr = SecretStr("")
    weight: float = Field(default=1.0, gt=0)
    spawn_limit: int = Field(default=4, ge=1)


def unit_hash(hub: str, key: str) -> float:
    """A number in (0, 1), uniform over keys, fixed for the pair (``hub``, ``key``)."""
    digest = hashlib.sha256(f"{hub}\0{key}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64


def score(hub: HubSpec, key: str) -> float:
    """``hub``'s weighted rendezvous score for ``key`` (higher wins)."""
    return -hub.weight / math.log(unit_hash(hub.name, key))


def place(key: str, candidates: Sequence[HubSpec]) -> HubSpec:
    """The Hub ``key`` goes to among ``candidates`` (ValueError when there is none)."""
    if not candidates:
        raise ValueError("no Hub takes new users (every one is down or draining)")
    return max(candidates, key=lambda hub: (score(hub, key), hub.name))


def check_unique_names(hubs: Sequence[HubSpec]) -> None:
    """ValueError when two Hubs share a name."""
    names = [hub.name for hub in hubs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"Hub names must be unique: {', '.join(repeated)}")
