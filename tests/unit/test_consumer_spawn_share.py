"""How the total spawn limit and the partitions are shared between consumer processes."""

from __future__ import annotations

import pytest

from consumers.service import home_partitions, spawn_share


@pytest.mark.parametrize(("total", "count"), [(5, 1), (5, 2), (5, 3), (4, 2), (16, 5)])
def test_spawn_shares_add_up_to_the_total(total: int, count: int) -> None:
    shares = [spawn_share(total, index, count) for index in range(count)]
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1


def test_every_process_may_spawn_at_least_once() -> None:
    assert [spawn_share(2, index, 3) for index in range(3)] == [1, 1, 1]


def test_home_partitions_cover_every_partition_once() -> None:
    homes = [home_partitions(4, index, 2) for index in range(2)]
    assert homes == [[0, 2], [1, 3]]
    assert sorted(p for home in homes for p in home) == [0, 1, 2, 3]
