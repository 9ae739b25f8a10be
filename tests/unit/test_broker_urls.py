"""Several broker nodes in ORCH_AMQP_URL: parsing, and the failover connection taking
them in turn (aio-pika reads ``url`` once per connection attempt)."""

from __future__ import annotations

import pytest

from runtime.bus.connection import FailoverConnection, broker_urls

NODES = [f"amqp://u:secret@127.0.0.1:{port}/" for port in (5001, 5002, 5003)]


def test_one_or_several_urls_separated_by_commas() -> None:
    assert broker_urls(NODES[0]) == [NODES[0]]
    assert broker_urls(" , ".join(NODES) + ",") == NODES
    with pytest.raises(ValueError, match="no broker URL"):
        broker_urls(" , ")


async def test_each_connection_attempt_takes_the_next_node() -> None:
    connection = FailoverConnection(NODES, first=1)
    tried = [connection.url.port for _ in range(4)]
    assert tried == [5002, 5003, 5001, 5002]
    shown = str(connection)
    assert "secret" not in shown and "127.0.0.1:5002" in shown


async def test_a_new_secret_holds_for_every_node() -> None:
    connection = FailoverConnection(NODES)
    connection.url = connection.url.with_password("rotated")
    assert {connection.url.password for _ in NODES} == {"rotated"}
    assert sorted(connection.url.port for _ in NODES) == [5001, 5002, 5003]
