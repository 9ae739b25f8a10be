"""The local stack starts real RabbitMQ and JupyterHub, and stops them without leftovers."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import aio_pika
import psutil
import pytest

from devstack.broker import RabbitMQBroker
from devstack.hub import HubConfig, JupyterHubProcess
from devstack.stack import LocalStack, StackOptions

APP_ORIGIN = "http://127.0.0.1:9999"
SERVICE_TOKEN = "localstack-test-service-token"
QUEUE = "localstack-test"


def _still_running(pids: list[int]) -> list[int]:
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


def _call(
    method: str, url: str, *, token: str = SERVICE_TOKEN
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(
        url, method=method, headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            headers = {key.lower(): value for key, value in response.headers.items()}
            return response.status, response.read(), headers
    except urllib.error.HTTPError as error:
        headers = {key.lower(): value for key, value in error.headers.items()}
        return error.code, error.read(), headers


async def _publish_persistent(amqp_url: str, body: bytes) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()  # publisher confirms are on by default
        queue = await channel.declare_queue(QUEUE, durable=True)
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue.name,
        )


async def _get_one(amqp_url: str) -> bytes:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(QUEUE, durable=True)
        message = await queue.get(timeout=5)
        await message.ack()
        return message.body


def test_broker_keeps_messages_over_restart_serves_metrics_and_stops_clean(tmp_path: Path) -> None:
    broker = RabbitMQBroker(tmp_path)
    broker.start()
    try:
        asyncio.run(_publish_persistent(broker.amqp_url, b"survives a restart"))
        broker.restart()
        pids = broker.process_ids()
        assert asyncio.run(_get_one(broker.amqp_url)) == b"survives a restart"
        scraper = broker.metrics_tls.client_context()
        metrics_url = f"{broker.prometheus_url}/metrics"
        with urllib.request.urlopen(metrics_url, timeout=10, context=scraper) as metrics:
            assert metrics.status == 200
            assert b"rabbitmq_" in metrics.read()
        anonymous = ssl.create_default_context(cafile=str(broker.metrics_tls.ca_file))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(metrics_url, timeout=10, context=anonymous).read()
        plain_http = metrics_url.replace("https://", "http://")
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(plain_http, timeout=10).read()
        guest_url = f"amqp://guest:guest@127.0.0.1:{broker.amqp_port}/"
        with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
            asyncio.run(_publish_persistent(guest_url, b"as guest"))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{broker.management_url}/api/overview", timeout=10)
        assert refused.value.code == 401
        conf = broker.base_dir / "rabbitmq.conf"  # holds the generated password
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    finally:
        broker.stop()
    assert pids
    assert _still_running(pids) == []
    assert not broker.mnesia_dir.exists()


def test_hub_spawns_embeddable_server_keeps_it_over_restart_and_stops_it(tmp_path: Path) -> None:
    hub = JupyterHubProcess(
        HubConfig(tmp_path, service_token=SERVICE_TOKEN, app_origins=[APP_ORIGIN])
    )
    hub.start()
    try:
        assert _call("POST", f"{hub.api_url}/users/alice")[0] == 201
        assert _call("POST", f"{hub.api_url}/users/alice/server")[0] in (201, 202)
        deadline = time.monotonic() + 40
        while True:
            user = json.loads(_call("GET", f"{hub.api_url}/users/alice")[1])
            if user["servers"].get("", {}).get("ready"):
                break
            assert time.monotonic() < deadline, f"server not ready: {user}"
            time.sleep(0.2)

        assert _call("GET", f"{hub.url}/user/alice/api/contents")[0] == 200
        status, _, headers = _call("GET", f"{hub.url}/user/alice/lab")
        assert status == 200
        assert f"frame-ancestors 'self' {APP_ORIGIN}" in headers["content-security-policy"]

        server_pids = hub.singleuser_pids()
        assert len(server_pids) == 1
        hub.restart()  # the server survives, and is no longer a child of the Hub
        assert hub.singleuser_pids() == server_pids
        assert _call("GET", f"{hub.url}/user/alice/api/contents")[0] == 200
        pids = hub.process_ids()
    finally:
        hub.stop()
    assert set(server_pids) <= set(pids)
    assert _still_running(pids) == []


def _occupy(port: int) -> socket.socket:
    """Listen on ``port`` as a stranger would, between the choice of the port and its use."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    return holder


def test_broker_whose_ports_were_taken_starts_on_others(tmp_path: Path) -> None:
    broker = RabbitMQBroker(tmp_path)
    taken = {broker.amqp_port, broker.dist_port}
    holders = [_occupy(port) for port in taken]
    try:
        broker.start()
        try:
            assert {broker.amqp_port, broker.dist_port}.isdisjoint(taken)
            asyncio.run(_publish_persistent(broker.amqp_url, b"on the new ports"))
            assert asyncio.run(_get_one(broker.amqp_url)) == b"on the new ports"
        finally:
            broker.stop()
    finally:
        for holder in holders:
            holder.close()


def test_stack_whose_gateway_and_hub_ports_were_taken_starts_on_others(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, StackOptions(consumers=1, hub_service=False))
    taken = {stack.gateway_port, stack.hub.ports.public}
    holders = [_occupy(port) for port in taken]
    try:
        with stack:
            assert {stack.gateway_port, stack.hub.ports.public}.isdisjoint(taken)
            assert _call("GET", f"{stack.hub.api_url}/", token=stack.service_token)[0] == 200
            key = stack.issue_app_key("ports")
            request = urllib.request.Request(
                f"{stack.gateway_url}/v1/users/alice/notebooks",
                headers={"Authorization": f"Bearer {key}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert json.loads(response.read()) is not None
    finally:
        for holder in holders:
            holder.close()
