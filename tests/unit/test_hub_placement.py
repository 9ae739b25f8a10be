"""Weighted rendezvous placement over several Hubs (runtime.hubs): pure logic."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from runtime.hubs import HubSpec, check_unique_names, place, unit_hash


def hub(name: str, weight: float = 1.0) -> HubSpec:
    return HubSpec(name=name, public_url=f"http://{name}.test", weight=weight)


USERS = [f"user{i}-{i * 7919 % 1000:03d}" for i in range(6000)]


def test_unit_hash_is_in_the_open_unit_interval_and_fixed() -> None:
    values = [unit_hash("a", u) for u in USERS[:500]]
    assert all(0.0 < v < 1.0 for v in values)
    assert unit_hash("a", "x") == unit_hash("a", "x") != unit_hash("b", "x")


def test_shares_follow_the_weights() -> None:
    hubs = [hub("a", 1), hub("b", 2), hub("c", 1)]
    counts = Counter(place(u, hubs).name for u in USERS)
    for spec in hubs:
        expected = len(USERS) * spec.weight / 4
        assert abs(counts[spec.name] - expected) < 0.05 * len(USERS), counts


def test_adding_a_hub_moves_only_users_to_it() -> None:
    before = {u: place(u, [hub("a"), hub("b")]).name for u in USERS}
    after = {u: place(u, [hub("a"), hub("b"), hub("c")]).name for u in USERS}
    moved = {u for u in USERS if before[u] != after[u]}
    assert moved and all(after[u] == "c" for u in moved)
    assert abs(len(moved) - len(USERS) / 3) < 0.05 * len(USERS)


def test_leaving_a_hub_out_moves_only_its_users() -> None:
    three = [hub("a"), hub("b"), hub("c")]
    before = {u: place(u, three).name for u in USERS}
    after = {u: place(u, three[:2]).name for u in USERS}
    assert {u for u in USERS if before[u] != after[u]} == {u for u in USERS if before[u] == "c"}


def test_placement_does_not_depend_on_the_order_of_the_hubs() -> None:
    hubs = [hub("a", 1), hub("b", 3)]
    assert [place(u, hubs).name for u in USERS[:300]] == [
        place(u, hubs[::-1]).name for u in USERS[:300]
    ]


def test_no_candidate_is_an_error_naming_why() -> None:
    with pytest.raises(ValueError, match="no Hub takes new users"):
        place("someone", [])


def test_specs_reject_bad_names_weights_and_repeats() -> None:
    with pytest.raises(ValidationError):
        HubSpec(name="Hub A", public_url="http://x")
    with pytest.raises(ValidationError):
        HubSpec(name="a", public_url="http://x", weight=0)
    with pytest.raises(ValueError, match="unique: a"):
        check_unique_names([hub("a"), hub("b"), hub("a")])
