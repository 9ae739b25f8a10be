"""``orchestrator queues``: depths, consumers and rates of the bus queues, from the
RabbitMQ management HTTP API."""

from __future__ import annotations

import argparse
import base64
import sys
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp

from orchestrator.operator.tables import print_rows
from runtime.logs import redact_text
from runtime.settings import OperatorSettings
from schemas import topology as t

_QUEUE_COLUMNS = (
    "name,type,state,messages,messages_ready,messages_unacknowledged,consumers,message_stats"
)
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20)
HUMAN_COLUMNS = (
    "queue",
    "role",
    "type",
    "ready",
    "unacked",
    "consumers",
    "active_consumers",
    "publish_per_s",
    "deliver_per_s",
    "ack_per_s",
)


class ManagementError(Exception):
    """The management API could not be reached or refused the request."""


@dataclass(frozen=True)
class ManagementApi:
    """A read-only client of the RabbitMQ management HTTP API for one virtual host."""

    url: str
    user: str
    password: str
    vhost: str = "/"

    async def get(self, session: aiohttp.ClientSession, resource: str) -> Any:
        """GET ``/api/<resource>/<vhost>`` as JSON; raises :class:`ManagementError`."""
        vhost = urllib.parse.quote(self.vhost, safe="")
        target = f"{self.url.rstrip('/')}/api/{resource}/{vhost}"
        credentials = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}"}
        try:
            async with session.get(target, headers=headers, params=_params(resource)) as response:
                if response.status == 401:
                    raise ManagementError(
                        f"the management API at {self.url} rejected the credentials of "
                        f"'{self.user}' (ORCH_MANAGEMENT_USER / ORCH_MANAGEMENT_PASSWORD)"
                    )
                if response.status != 200:
                    raise ManagementError(
                        f"the management API answered {response.status} for {resource}"
                    )
                return await response.json()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ManagementError(
                f"cannot reach the RabbitMQ management API at {self.url} "
                f"(ORCH_MANAGEMENT_URL): {redact_text(str(error))}"
            ) from error


def _params(resource: str) -> dict[str, str]:
    return {"columns": _QUEUE_COLUMNS} if resource == "queues" else {}


def queue_role(name: str) -> str:
    """What a queue is for, in a few words (from the names in :mod:`schemas.topology`)."""
    if name == t.DEAD_LETTER_QUEUE:
        return "dead letters (parking lot)"
    if name.startswith(f"{t.COMMANDS_EXCHANGE}.p"):
        return f"commands, partition {name.rsplit('.p', 1)[1]}"
    for delay in t.RETRY_DELAYS_SECONDS:
        if name == t.retry_queue(delay):
            return f"retry after {delay} s"
    return "subscriber / other"


def _rate(stats: dict[str, Any], key: str) -> float:
    details = stats.get(f"{key}_details") or {}
    return round(float(details.get("rate", 0.0)), 1)


def queue_rows(
    queues: list[dict[str, Any]], consumers: list[dict[str, Any]], *, everything: bool
) -> list[dict[str, Any]]:
    """One row per queue: depth, consumers (and how many are active), message rates
    (per second, as sampled by the broker every few seconds) and totals.

    Only the orchestrator's queues (``orch.*``) unless ``everything``; sorted by name.
    """
    active: dict[str, int] = {}
    for consumer in consumers:
        queue = (consumer.get("queue") or {}).get("name", "")
        if consumer.get("active", True) and consumer.get("activity_status") != "waiting":
            active[queue] = active.get(queue, 0) + 1
    rows = []
    for queue in sorted(queues, key=lambda q: str(q.get("name", ""))):
        name = str(queue.get("name", ""))
        if not everything and not name.startswith("orch."):
            continue
        stats = queue.get("message_stats") or {}
        rows.append(
            {
                "queue": name,
                "role": queue_role(name),
                "type": queue.get("type", ""),
                "state": queue.get("state", ""),
                "ready": int(queue.get("messages_ready") or 0),
                "unacked": int(queue.get("messages_unacknowledged") or 0),
                "consumers": int(queue.get("consumers") or 0),
                "active_consumers": active.get(name, 0),
                "publish_per_s": _rate(stats, "publish"),
                "deliver_per_s": _rate(stats, "deliver_get"),
                "ack_per_s": _rate(stats, "ack"),
                "published_total": int(stats.get("publish") or 0),
                "delivered_total": int(stats.get("deliver_get") or 0),
                "acked_total": int(stats.get("ack") or 0),
            }
        )
    return rows


async def fetch_queue_rows(settings: OperatorSettings, *, everything: bool) -> list[dict[str, Any]]:
    """Query the management API of ``settings`` and build the queue rows."""
    api = ManagementApi(
        settings.management_url,
        settings.management_user,
        settings.management_password.get_secret_value(),
        settings.management_vhost,
    )
    async with aiohttp.ClientSession(timeout=_REQUEST_TIMEOUT) as session:
        queues = await api.get(session, "queues")
        consumers = await api.get(session, "consumers")
    return queue_rows(list(queues), list(consumers), everything=everything)


async def run_queues(settings: OperatorSettings, args: argparse.Namespace) -> int:
    """Print the queue table (or JSON); 1 when the management API is unavailable."""
    try:
        rows = await fetch_queue_rows(settings, everything=args.all)
    except ManagementError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print_rows(rows, as_json=True)
    else:
        print_rows([{c: row[c] for c in HUMAN_COLUMNS} for row in rows], as_json=False)
    return 0
