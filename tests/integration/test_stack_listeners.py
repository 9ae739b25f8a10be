"""Every socket the stack listens on is bound to loopback, single-user servers and
kernels included (what a port scan from another host would find: nothing)."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

import aiohttp
import psutil

from devstack.command_client import CommandClient
from devstack.stack import LocalStack
from schemas.workspaces import workspace_name
from tests.conftest import TEST_APP


def _stack_pids(stack: LocalStack) -> set[int]:
    roots = [*stack.broker.process_ids(), *stack.hub.process_ids()]
    for process in [stack.gateway, *stack.consumers, *stack.extra_processes]:
        if process is not None:
            roots += process.process_ids()
    return set(roots)


def _listening(pids: set[int]) -> list[Any]:
    return [
        c
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


async def test_every_listening_socket_of_the_stack_is_on_loopback(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession, username: str
) -> None:
    # a single-user server with a running kernel listens too
    await CommandClient(http, stack.gateway_url, app_key).succeed(
        {"type": "start-server", "user": username}
    )
    kernels = f"{stack.hub.url}/user/{workspace_name(TEST_APP, username)}/api/kernels"
    auth = {"Authorization": f"token {stack.service_token}"}
    async with http.post(kernels, json={"name": "python3"}, headers=auth) as resp:
        assert resp.status == 201, await resp.text()
    deadline = time.monotonic() + 60
    while True:  # nothing announces that the kernel has bound its sockets: look
        listening = _listening(_stack_pids(stack))
        kernel_sockets = [
            c for c in listening if "ipykernel" in " ".join(psutil.Process(c.pid).cmdline())
        ]
        if len(kernel_sockets) >= 5:  # shell, iopub, stdin, control, heartbeat
            break
        assert time.monotonic() < deadline, f"kernel sockets: {kernel_sockets}"
        await asyncio.sleep(0.2)
    ports = {c.laddr.port for c in listening}
    broker = stack.broker
    expected = {stack.gateway_port, stack.hub.ports.public, stack.hub.ports.hub}
    expected |= {broker.amqp_port, broker.dist_port, broker.epmd_port, broker.management_port}
    assert expected <= ports
    exposed = [
        (psutil.Process(c.pid).name(), c.laddr)
        for c in listening
        if not ipaddress.ip_address(c.laddr.ip).is_loopback
    ]
    assert exposed == []
