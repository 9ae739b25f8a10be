"""How the partitions are shared between consumer processes."""

from __future__ import annotations

from consumers.service import home_partitions


def test_home_partitions_cover_every_partition_once() -> None:
    homes = [home_partitions(4, index, 2) for index in range(2)]
    assert homes == [[0, 2], [1, 3]]
    assert sorted(p for home in homes for p in home) == [0, 1, 2, 3]
