"""Scenario 7: the loss of a broker node, a consumer and a gateway, under mixed load,
on the distributed shape (a RabbitMQ cluster, PostgreSQL, several gateways and
consumers).

Timeline: steady load; ``kill -9`` one broker node; start it again (it rejoins); kill a
consumer (started again at once, as its supervisor would); kill a gateway (started again
a little later). The load is open-loop ``ensure-user`` and ``open`` commands spread
over the gateways, plus per-user loops that change a notebook and ``save`` it (each
save must make exactly one version). A subscriber that must miss nothing (a durable
quorum queue of its own) counts ``notebook.saved`` events per version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import datetime

import psutil
from aio_pika.abc import AbstractIncomingMessage

from devstack.broker_cluster import RabbitMQCluster
from devstack.reliability.load import (
    NO_ANSWER,
    CommandFactory,
    CommandLoad,
    LoadReport,
    command_records,
    rows_where_in,
    wait_until_final,
)
from devstack.reliability.notebooks import NOTEBOOK_PATH, SaveLoop, open_notebooks
from devstack.reliability.process_faults import fresh_users, kill_consumer
from devstack.reliability.result import ScenarioResult
from devstack.reliability.timeline import (
    Mark,
    mean_rate,
    per_second,
    seconds_until_back,
    text_chart,
)
from devstack.stack import LocalStack, StackOptions
from runtime.bus.connection import connect
from runtime.bus.topology import declare_events_exchange
from runtime.db.models import CommandRecord, NotebookVersion
from schemas.events import EventKind

_LOAD_LIMIT_SECONDS = 900.0  # a bound on the load; the timeline stops it much earlier


def cluster_options() -> StackOptions:
    """The distributed shape the scenario runs on: 3 broker nodes, PostgreSQL, 2
    gateways, 4 consumers; no hub service (every version belongs to a command)."""
    return StackOptions(broker_nodes=3, gateways=2, consumers=4, postgres=True, hub_service=False)


def mixed_commands(users: list[str], ensure_users: int, open_every: int) -> CommandFactory:
    """``open`` of one of ``users``' notebooks every ``open_every``-th command,
    ``ensure-user`` over ``ensure_users`` names otherwise."""
    tag = f"m{uuid.uuid4().hex[:5]}"

    def command(index: int) -> dict[str, str]:
        if index % open_every == 0:
            user = users[(index // open_every) % len(users)]
            return {"type": "open", "user": user, "path": NOTEBOOK_PATH}
        return {"type": "ensure-user", "user": f"{tag}u{index % ensure_users}"}

    return command


@dataclass
class SavedEventAudit:
    """``notebook.saved`` events per version id, as a subscriber that must miss nothing
    gets them: its own durable quorum queue (a member on every node), acked after
    counting. A message whose ack was lost with its node comes again (counted twice)."""

    counts: Counter[str] = field(default_factory=Counter)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Count the event's version, then ack (an ack lost in a failover is harmless)."""
        try:
            version = str(json.loads(message.body)["data"]["version_id"])
        except (ValueError, KeyError, TypeError):
            version = "undecodable"
        async with self._changed:
            self.counts[version] += 1
            self._changed.notify_all()
        with contextlib.suppress(Exception):  # the channel may be gone: it comes again
            await message.ack()

    async def wait_for(self, versions: Collection[str], within: float) -> set[str]:
        """Wait until every one of ``versions`` was seen; those still unseen after
        ``within`` s."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: not set(versions) - set(self.counts))
        return set(versions) - set(self.counts)


@contextlib.asynccontextmanager
async def saved_event_audit(amqp_url: str) -> AsyncIterator[SavedEventAudit]:
    """Bind a durable quorum queue of this audit's own to ``notebook.saved`` events and
    consume it over every node's URL; the queue is deleted afterwards."""
    audit = SavedEventAudit()
    connection = await connect(amqp_url, name="saved-event-audit")
    name = f"reliability-saved-{uuid.uuid4().hex[:8]}"
    try:
        channel = await connection.channel()
        exchange = await declare_events_exchange(channel)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, routing_key=f"{EventKind.NOTEBOOK_SAVED.value}.#")
        await queue.consume(audit.on_message)
        yield audit
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()


async def versions_of(database_url: str, command_ids: Collection[str]) -> dict[str, str]:
    """Version id → id of the command that wrote it, for versions ``command_ids`` made."""
    rows = await rows_where_in(
        database_url, NotebookVersion, NotebookVersion.command_id, command_ids
    )
    return {str(row.id): str(row.command_id) for row in rows}


async def _kill_gateway(stack: LocalStack) -> None:
    """SIGKILL the first gateway (by its PID) and reap it; nothing is started."""
    assert stack.gateway is not None
    psutil.Process(stack.gateway.pid).kill()
    await asyncio.to_thread(stack.gateway.stop, 0)


@dataclass
class _Timeline:
    origin: float = field(default_factory=time.monotonic)
    wall_origin: float = field(default_factory=time.time)
    marks: list[Mark] = field(default_factory=list)

    def mark(self, label: str) -> float:
        now = time.monotonic() - self.origin
        self.marks.append(Mark(now, label))
        return now

    def at(self, moment: datetime) -> float:
        """The monotonic time of a wall-clock ``moment`` (e.g. a database timestamp)."""
        return self.origin + moment.timestamp() - self.wall_origin


async def node_loss_under_load(
    stack: LocalStack,
    app_key: str,
    *,
    rate: float,
    warm_up: float = 10.0,
    node_down: float = 10.0,
    settle: float = 8.0,
    save_users: int = 3,
    open_every: int = 5,
    drain_timeout: float = 300.0,
) -> ScenarioResult:
    """Scenario 7 on a stack with a broker cluster (see the module docstring).

    Holds when: every accepted command succeeded (0 lost); no answer was a 5xx other
    than 503; every save of changed content made exactly one version (0 duplicated);
    the subscriber saw every version's ``notebook.saved`` (0 lost); the accepted rate
    came back to 90 % of its pre-fault rate after each fault; every node, consumer and
    gateway runs at the end.
    """
    result = ScenarioResult("7. broker node, consumer and gateway loss under load")
    cluster = stack.broker
    if not isinstance(cluster, RabbitMQCluster):
        raise ValueError("the node-loss scenario needs a stack with broker_nodes > 1")
    gateways = stack.gateway_urls
    users = fresh_users(save_users, "nl")
    not_open = await open_notebooks(stack, app_key, users)
    result.check(not not_open, f"notebooks could not be opened for {not_open}")

    async with saved_event_audit(cluster.amqp_url) as audit:
        timeline = _Timeline()
        stop = asyncio.Event()
        load = CommandLoad(gateways, app_key, mixed_commands(users, 20, open_every), rate=rate)
        load_task = asyncio.create_task(load.run(_LOAD_LIMIT_SECONDS, stop))
        loops = [SaveLoop(stack, app_key, u, gateways=gateways, unavailable_for=90) for u in users]
        loop_tasks = [asyncio.create_task(loop.run(stop)) for loop in loops]
        faults = await _faults(stack, cluster, timeline, warm_up, node_down, settle)
        stop.set()
        report = await load_task
        await asyncio.gather(*loop_tasks)
        traffic = time.monotonic() - timeline.origin

        save_ids = [i for loop in loops for i in loop.command_ids]
        final = await wait_until_final(
            stack.database_url, [*report.accepted_ids, *save_ids], within=drain_timeout
        )
        versions = await versions_of(stack.database_url, save_ids)
        unseen = await audit.wait_for(versions, within=60)

    records = await command_records(stack.database_url, [*report.accepted_ids, *save_ids])
    seconds = int(traffic) + 1
    accepted = per_second(
        (a.answered_at for a in report.answers if a.status == 202), timeline.origin, seconds
    )
    completed = per_second(
        (timeline.at(r.finished_at) for r in records.values() if r.finished_at),
        timeline.origin,
        seconds,
    )
    baseline = mean_rate(accepted, 2, int(warm_up))
    back = {label: seconds_until_back(accepted, at, baseline) for label, at in faults.items()}
    _report_figures(result, report, final.counts(), records, save_ids, versions, audit)
    result.figures["saves sent again after 503 / refused"] = sum(
        int(view.get("resubmits", 0)) for loop in loops for view in loop.saves
    )
    per_command = Counter(versions.values())
    result.figures.update(
        {
            "traffic time (s)": round(traffic, 1),
            "pre-fault accepted rate (cmd/s)": round(baseline, 1),
            "back to 90% accepted rate after (s)": {
                k: "never" if v is None else round(v, 1) for k, v in back.items()
            },
            "drain time after traffic (s)": round(final.seconds, 1),
        }
    )
    result.charts.append(
        "accepted (202 answered) and completed (finished) commands per second\n"
        + text_chart({"accepted": accepted, "completed": completed}, timeline.marks)
    )

    unfinished = final.unfinished()
    result.check(not unfinished, f"{len(unfinished)} accepted commands lost or unfinished")
    failed = final.counts().get("failed", 0)
    result.check(failed == 0, f"{failed} accepted commands failed")
    other_5xx = sum(n for s, n in report.status_counts().items() if s >= 500 and s != 503)
    result.check(other_5xx == 0, f"{other_5xx} answers were 5xx other than 503")
    twice = sorted(c for c, n in per_command.items() if n > 1)
    result.check(not twice, f"saves that made two or more versions: {twice}")
    succeeded_saves = [i for i in save_ids if final.statuses.get(i) == "succeeded"]
    result.check(
        len(versions) == len(succeeded_saves),
        f"{len(succeeded_saves)} saves of changed content made {len(versions)} versions",
    )
    result.check(not unseen, f"{len(unseen)} versions without a notebook.saved event")
    never = [k for k, v in back.items() if v is None]
    result.check(not never, f"the accepted rate never came back after: {never}")
    down = await asyncio.to_thread(_not_running, stack, cluster)
    result.check(not down, f"not running at the end: {down}")
    return result


async def _faults(
    stack: LocalStack,
    cluster: RabbitMQCluster,
    timeline: _Timeline,
    warm_up: float,
    node_down: float,
    settle: float,
) -> dict[str, float]:
    """Run the fault timeline; when each fault struck, in seconds from the origin."""
    faults: dict[str, float] = {}
    await asyncio.sleep(warm_up)  # scenario timeline: steady load before the first fault
    faults["broker node"] = timeline.mark("kill -9 broker node 1")
    await asyncio.to_thread(cluster.kill_node, 0)
    await asyncio.sleep(node_down)  # scenario timeline: the node stays down
    timeline.mark("start node 1")
    await asyncio.to_thread(cluster.start_node, 0)
    timeline.mark("node 1 up")
    await asyncio.sleep(settle)  # scenario timeline: load on the rejoined cluster
    faults["consumer"] = timeline.mark("kill -9 consumer 0 (restarted)")
    await kill_consumer(stack, 0)
    await asyncio.sleep(settle)  # scenario timeline: load after the consumer restart
    faults["gateway"] = timeline.mark("kill -9 gateway 1")
    await _kill_gateway(stack)
    await asyncio.sleep(settle / 2)  # scenario timeline: one gateway carries the load
    await asyncio.to_thread(stack.start_gateway)
    timeline.mark("gateway 1 up")
    await asyncio.sleep(settle)  # scenario timeline: load after the last fault
    return faults


def _report_figures(
    result: ScenarioResult,
    report: LoadReport,
    final_counts: dict[str, int],
    records: dict[str, CommandRecord],
    save_ids: list[str],
    versions: dict[str, str],
    audit: SavedEventAudit,
) -> None:
    statuses = report.status_counts()
    retried = Counter(r.type for r in records.values() if r.attempts > 1)
    per_version = Counter(audit.counts[v] for v in versions)
    result.figures.update(
        {
            "target rate (cmd/s)": report.rate,
            "requests sent (ensure-user, open)": len(report.answers),
            "answers by status": statuses,
            "answered 503 (bus failing over)": statuses.get(503, 0),
            "5xx other than 503": sum(n for s, n in statuses.items() if s >= 500 and s != 503),
            "no answer (gateway killed mid-request)": statuses.get(NO_ANSWER, 0),
            "rerouted to another gateway": report.rerouted,
            "accepted commands (load)": len(report.accepted_ids),
            "saves accepted": len(save_ids),
            "final states": final_counts,
            "commands attempted more than once, by type": dict(sorted(retried.items())),
            "versions made by saves": len(versions),
            "notebook.saved events per version": {
                f"{n} event(s)": k for n, k in sorted(per_version.items())
            },
        }
    )


def _not_running(stack: LocalStack, cluster: RabbitMQCluster) -> list[str]:
    running = cluster.running_nodes()
    down = [node.node_name for node in cluster.nodes if node.node_name not in running]
    down += [c.name for c in stack.consumers if not c.is_running()]
    if stack.gateway is None or not stack.gateway.is_running():
        down.append("gateway")
    down += [g.name for g, _ in stack.extra_gateways if not g.is_running()]
    return down
