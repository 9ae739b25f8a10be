"""Save-to-event latency: a save made in Jupyter until ``notebook.saved`` reaches a subscriber.

Starts a whole local stack (private RabbitMQ, JupyterHub with the hub service and the
save extension in every single-user server, gateway, consumers) through LocalStack,
starts one user's server, subscribes to ``notebook.saved`` on the events exchange, then:

1. baseline A, the save itself: each save is a contents API PUT of changed content to the
   user's server through the Hub's proxy (what Ctrl-S / autosave send); its round trip;
2. baseline B, the bus floor: an event published with confirms to ``orch.events`` until
   the same subscriber has it;
3. ``--saves`` sequential saves (default 200), each waiting for its event (matched by
   the content hash): latency from the start of the PUT to the event's arrival;
4. a burst of ``--burst`` saves of one file back to back: how many events they made
   (coalescing) and when the last content's event arrived.

Prints p50/p95/p99/max, the targets (p50 ≤ 100 ms, p99 ≤ 500 ms) and ratios against the
baselines. Everything started is stopped at the end.

    .venv/bin/python bench/save_latency.py [--saves 200 --burst 50 --consumers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from consumers.hub_client import HubClient
from consumers.notebook_codec import canonicalise, empty_notebook
from devstack.stack import LocalStack, StackOptions
from orchestrator.operator.subscribe import EventSubscription, ReceivedEvent, subscribe_events
from runtime.bus.connection import connect
from runtime.bus.publisher import ConfirmedPublisher
from schemas.commands import utcnow
from schemas.events import EventKind, NotebookDeleted, make_event

EVENT_TIMEOUT = 30.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) in milliseconds."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index] * 1000


def summary(name: str, values: list[float]) -> str:
    """One printable line of figures."""
    return (
        f"{name:<36} n={len(values):<4} p50 {percentile(values, 50):7.1f} ms"
        f"   p95 {percentile(values, 95):7.1f} ms   p99 {percentile(values, 99):7.1f} ms"
        f"   max {percentile(values, 100):7.1f} ms"
    )


def notebook(text: str) -> dict[str, Any]:
    """A small valid notebook whose content (and hash) depends on ``text``."""
    content = empty_notebook()
    content["cells"] = [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": uuid.uuid4().hex[:8],
            "metadata": {},
            "outputs": [],
            "source": f"print({text!r})",
        }
    ]
    return content


class Saver:
    """PUTs notebooks to one user's server as Ctrl-S does."""

    def __init__(self, stack: LocalStack, http: aiohttp.ClientSession, user: str) -> None:
        self._http = http
        self._url = f"{stack.hub.url}/user/{user}/api/contents/"
        self._auth = {"Authorization": f"token {stack.service_token}"}

    async def save(self, path: str, content: dict[str, Any]) -> None:
        """One save; raises if the server refused it."""
        body = {"type": "notebook", "format": "json", "content": content}
        async with self._http.put(self._url + path, json=body, headers=self._auth) as resp:
            if resp.status not in (200, 201):
                raise RuntimeError(f"save failed: HTTP {resp.status}: {await resp.text()}")


async def saved_with(events: EventSubscription, sha256: str) -> float:
    """Arrival time (monotonic) of the ``notebook.saved`` event of content ``sha256``."""
    async with asyncio.timeout(EVENT_TIMEOUT):
        received = await events.first(lambda r: r.data.get("sha256") == sha256)
    return received.received_monotonic


def _has_path(path: str, received: ReceivedEvent) -> bool:
    return received.data.get("path") == path


async def bus_floor(stack: LocalStack, events: EventSubscription, count: int) -> list[float]:
    """Publish-with-confirm to the events exchange until the subscriber has the event."""
    connection = await connect(stack.broker.amqp_url, name="bench-floor")
    publisher = ConfirmedPublisher(connection)
    latencies = []
    try:
        for _ in range(count):
            marker = f"floor-{uuid.uuid4().hex}.ipynb"
            data = NotebookDeleted(user="bench-floor", path=marker, deleted_at=utcnow())
            event = make_event(EventKind.NOTEBOOK_DELETED, data, subject=f"bench-floor/{marker}")
            started = time.monotonic()
            await publisher.publish_event(EventKind.NOTEBOOK_DELETED, event)
            async with asyncio.timeout(EVENT_TIMEOUT):
                received = await events.first(partial(_has_path, marker))
            latencies.append(received.received_monotonic - started)
    finally:
        await publisher.close()
        await connection.close()
    return latencies


async def run(stack: LocalStack, saves: int, burst: int) -> None:
    """All phases against a started stack; prints the figures."""
    user = f"bench{uuid.uuid4().hex[:8]}"
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        hub = HubClient(http, stack.hub.api_url, stack.service_token)
        await hub.ensure_user(user)
        await hub.start_server(user)
        saver = Saver(stack, http, user)
        async with subscribe_events(stack.broker.amqp_url, ["notebook"]) as events:
            for i in range(5):  # warm-up: connections, caches, first version rows
                content = notebook(f"warm-up {i}")
                await saver.save("warmup.ipynb", content)
                await saved_with(events, canonicalise(content).sha256)

            floor = await bus_floor(stack, events, saves)
            put_times, save_to_event = [], []
            for i in range(saves):
                content = notebook(f"revision {i} {uuid.uuid4().hex}")
                sha = canonicalise(content).sha256
                started = time.monotonic()
                await saver.save("latency.ipynb", content)
                put_times.append(time.monotonic() - started)
                save_to_event.append(await saved_with(events, sha) - started)

            contents = [notebook(f"burst {i} {uuid.uuid4().hex}") for i in range(burst)]
            hashes = {canonicalise(c).sha256 for c in contents}
            started = time.monotonic()
            for content in contents:
                await saver.save("burst.ipynb", content)
            burst_put = time.monotonic() - started
            last = canonicalise(contents[-1]).sha256
            seen = 0
            async with asyncio.timeout(EVENT_TIMEOUT):
                while True:
                    received = await events.first(lambda r: r.data.get("sha256") in hashes)
                    seen += 1
                    if received.data["sha256"] == last:
                        break
            burst_done = received.received_monotonic - started

    p50, p99 = percentile(save_to_event, 50), percentile(save_to_event, 99)
    print()
    print(summary("baseline A: contents PUT (the save)", put_times))
    print(summary("baseline B: bus publish → subscriber", floor))
    print(summary("save → notebook.saved at subscriber", save_to_event))
    print(
        f"targets: p50 {p50:.1f} ms ≤ 100 ms: {'met' if p50 <= 100 else 'MISSED'};"
        f" p99 {p99:.1f} ms ≤ 500 ms: {'met' if p99 <= 500 else 'MISSED'}"
    )
    print(
        f"ratios (p50): save→event / PUT {p50 / percentile(put_times, 50):.1f}x;"
        f" save→event / bus floor {p50 / percentile(floor, 50):.1f}x"
    )
    print(
        f"burst: {burst} saves of one file in {burst_put * 1000:.0f} ms → {seen} notebook.saved"
        f" events (coalesced); last content's event {burst_done * 1000:.0f} ms after the first PUT"
    )


def main() -> None:
    """Parse arguments, start the stack, run, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=200)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--consumers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-save-") as state:
        stack = LocalStack(Path(state), StackOptions(consumers=args.consumers, hub_service=True))
        print(f"starting the stack under {state} …", flush=True)
        stack.start()
        try:
            asyncio.run(run(stack, args.saves, args.burst))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
