"""The consumer process: wire adapters to the processors and consume the partitions.

Each process subscribes at once to its *home* partitions (``index`` of ``count``)
and, after a grace period, to all the others as a standby: with single-active-
consumer the first subscriber of a queue is active, so processes started together
share the partitions, and a survivor takes over those of a process that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from consumers.contents_client import ContentsClient
from consumers.culler import Culler, Policy
from consumers.deliveries import CHANNEL_GONE, Deliveries
from consumers.event_publisher import EventPublisher
from consumers.handlers import Ports
from consumers.health_server import ReadinessProbe, serve_health
from consumers.hub_client import HubClient
from consumers.hub_health import HubAvailability, HubHealth
from consumers.hubs import HubPorts
from consumers.lifecycle import Announcer, CommandLifecycle
from consumers.notifications import NotificationProcessor
from consumers.ports import CommandObserver
from consumers.processor import CommandProcessor
from consumers.redelivery import Redelivery
from consumers.relay import OutboxDelivery, Relay, RelayPolicy
from consumers.router import MessageRouter
from consumers.user_locks import UserLocks
from runtime.bus.lifecycle import confirmed_bus
from runtime.db.apps import AppStore
from runtime.db.commands import CommandStore
from runtime.db.engine import create_schema, make_engine, make_sessionmaker
from runtime.db.hub_status import HubStatusStore
from runtime.db.leases import JobLeases
from runtime.db.moves import MoveStore
from runtime.db.notebooks import NotebookStore
from runtime.db.outbox import Outbox
from runtime.db.servers import ServerStore
from runtime.db.spawn_slots import SpawnSlots
from runtime.db.workspaces import WorkspaceStore
from runtime.failpoints import Failpoints
from runtime.hubs import HubSpec
from runtime.settings import ConsumerSettings
from schemas import topology as t
from schemas.commands import CommandMessage
from schemas.launch_codes import launch_link_issuer, view_link_issuer
from schemas.topology import Partitioning
from schemas.workspaces import Workspace

log = structlog.get_logger(__name__)
SPAWN_LEASE_MARGIN_SECONDS = 30.0
STANDBY_GRACE_SECONDS = 3.0
# How long a stopping consumer lets the commands in progress finish (then cuts them:
# the broker delivers their messages again).
SHUTDOWN_GRACE_SECONDS = 10.0


def home_partitions(partitions: int, index: int, count: int) -> list[int]:
    """Partitions this process subscribes to first."""
    return [p for p in range(partitions) if p % count == index % count]


@dataclass(frozen=True)
class ConsumerRuntime:
    """The wired message router, the relay, the culler, and the broker connection they
    publish on."""

    router: MessageRouter
    relay: Relay
    culler: Culler
    hub_health: HubHealth
    availability: HubAvailability
    connection: AbstractRobustConnection


@contextlib.asynccontextmanager
async def consumer_runtime(
    settings: ConsumerSettings,
    *,
    name: str = "consumer",
) -> AsyncIterator[ConsumerRuntime]:
    """Open DB, HTTP session and broker connection; yield a ready message router.

    ``ORCH_SPAWN_CONCURRENCY`` limits spawns across ALL consumer processes (leases in
    the shared database), so keep it at or below the Hub's ``concurrent_spawn_limit``.
    """
    engine = make_engine(settings.database_url.get_secret_value())
    await create_schema(engine)
    sessions = make_sessionmaker(engine)
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
    hub_specs = settings.hub_specs()
    spawn_slots = {
        spec.name: SpawnSlots(
            sessions,
            spec.spawn_limit,
            lease_seconds=settings.spawn_timeout_seconds + SPAWN_LEASE_MARGIN_SECONDS,
            owner=name,
            hub=spec.name,
        )
        for spec in hub_specs
    }
    for slots in spawn_slots.values():
        await slots.ensure_slots()
    async with (
        confirmed_bus(settings, name=name) as (connection, publisher),
        aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(ssl=settings.hub_ssl_context())
        ) as http,
    ):
        notebooks = NotebookStore(sessions)
        hubs = HubPorts(
            {
                spec.name: _hub_ports(settings, spec, http, notebooks, spawn_slots[spec.name])
                for spec in hub_specs
            }
        )
        events = EventPublisher(publisher)
        redelivery = Redelivery(publisher)
        locks = UserLocks()
        workspaces = WorkspaceStore(sessions, hub_specs)
        command_log = CommandStore(sessions)
        outbox = Outbox(engine)
        delivery = OutboxDelivery(publisher, outbox)
        announcer = Announcer(events, outbox, delivery)
        servers = ServerStore(sessions)
        hub_status = HubStatusStore(sessions)
        availability = HubAvailability(hub_status)
        holder = f"{name}:{uuid.uuid4().hex[:8]}"

        def observer(message: CommandMessage, workspace: Workspace) -> CommandObserver:
            return CommandLifecycle(message, workspace, announcer, command_log, servers)

        commands = CommandProcessor(
            hubs,
            command_log,
            workspaces,
            events,
            redelivery,
            locks,
            outbox,
            delivery,
            failpoints=Failpoints.from_setting(settings.failpoints),
            observers=observer,
            availability=availability,
            moves=MoveStore(sessions),
        )
        culler = Culler(
            hubs=hubs,
            servers=servers,
            workspaces=workspaces,
            apps=AppStore(sessions),
            commands=command_log,
            publisher=publisher,
            leases=JobLeases(sessions),
            announcer=announcer,
            defaults=Policy(
                settings.idle_timeout_seconds, settings.max_age_seconds, settings.cull_grace_seconds
            ),
            interval=timedelta(seconds=settings.cull_interval_seconds),
            holder=holder,
        )
        hub_health = HubHealth(
            hubs,
            hub_status,
            JobLeases(sessions),
            interval=timedelta(seconds=settings.hub_check_interval_seconds),
            holder=holder,
            availability=availability,
        )
        relay = Relay(_relay_policy(settings), outbox, command_log, publisher)
        notifications = NotificationProcessor(
            hubs,
            notebooks,
            workspaces,
            events,
            redelivery,
            locks,
            inline_content_max_bytes=settings.inline_content_max_bytes,
        )
        router = MessageRouter(
            {t.KIND_COMMAND: commands, t.KIND_NOTIFICATION: notifications}, redelivery
        )
        try:
            yield ConsumerRuntime(router, relay, culler, hub_health, availability, connection)
        finally:
            await engine.dispose()


def _hub_ports(
    settings: ConsumerSettings,
    spec: HubSpec,
    http: aiohttp.ClientSession,
    notebooks: NotebookStore,
    spawn_slots: SpawnSlots,
) -> Ports:
    """The ports of one Hub: its API and contents clients (its token), its spawn slots,
    its launch links."""
    token = spec.token.get_secret_value()
    return Ports(
        hub=HubClient(
            http,
            spec.api_url,
            token,
            concurrency=settings.hub_concurrency,
            spawn_limit=spawn_slots,
            spawn_timeout=settings.spawn_timeout_seconds,
        ),
        contents=ContentsClient(http, spec.public_url, token),
        versions=notebooks,
        hub_public_url=spec.public_url,
        inline_content_max_bytes=settings.inline_content_max_bytes,
        launch_links=launch_link_issuer(settings, spec.public_url),
        view_links=view_link_issuer(settings, settings.public_url),
        flush_timeout_seconds=settings.flush_timeout_seconds,
        hub_name=spec.name,
    )


def _relay_policy(settings: ConsumerSettings) -> RelayPolicy:
    return RelayPolicy(
        interval=timedelta(seconds=settings.relay_interval_seconds),
        outbox_grace=timedelta(seconds=settings.outbox_grace_seconds),
        stale_accepted=timedelta(seconds=settings.stale_accepted_seconds),
        stale_running=timedelta(seconds=settings.stale_running_seconds),
        max_attempts=settings.relay_max_attempts,
        waiting_report=timedelta(seconds=settings.waiting_report_seconds),
    )


def _readiness(runtime: ConsumerRuntime, subscribed: asyncio.Event) -> ReadinessProbe:
    def probe() -> str | None:
        if not subscribed.is_set():
            return "not subscribed to the command partitions yet"
        if not runtime.connection.connected.is_set():
            return "broker connection lost (reconnecting)"
        return None

    return probe


async def _subscribe(
    channel: AbstractChannel, deliveries: Deliveries, names: list[str]
) -> list[tuple[AbstractQueue, str]]:
    """Consume ``names``; the queues with their consumer tags (to cancel at shutdown)."""
    subscriptions = []
    for name in names:
        # declare_queue (not get_queue) registers the queue with the robust channel,
        # so its consumer is restored after the broker comes back.
        queue = await channel.declare_queue(name, passive=True)
        subscriptions.append((queue, await queue.consume(deliveries.handle)))
        log.info("subscribed", queue=name)
    return subscriptions


async def _unsubscribe(subscriptions: list[tuple[AbstractQueue, str]]) -> None:
    """Stop new deliveries (the broker delivers what was not acked to others)."""
    for queue, tag in subscriptions:
        with contextlib.suppress(*CHANNEL_GONE):
            await queue.cancel(tag)


async def run_consumer(
    settings: ConsumerSettings, index: int, count: int, stop: asyncio.Event
) -> None:
    """Consume until ``stop`` is set; serve /metrics, /healthz, /readyz on the metrics port."""
    subscribed = asyncio.Event()
    async with (
        consumer_runtime(settings, name=f"consumer-{index}") as runtime,
        serve_health(
            settings.metrics_port,
            _readiness(runtime, subscribed),
            settings.instance,
            lambda: {"hubs": runtime.availability.snapshot()},
        ),
    ):
        deliveries = Deliveries(runtime.router)
        channel = await runtime.connection.channel()
        await channel.set_qos(prefetch_count=settings.prefetch)
        queues = Partitioning(settings.partitions).queues()
        home = home_partitions(settings.partitions, index, count)
        subscriptions = await _subscribe(channel, deliveries, [queues[p] for p in home])
        subscribed.set()
        relay = asyncio.create_task(runtime.relay.run(stop), name="relay")
        culler = asyncio.create_task(runtime.culler.run(stop), name="culler")
        hub_health = asyncio.create_task(runtime.hub_health.run(stop), name="hub-health")
        log.info(
            "spawn limits shared by all consumers",
            spawn_limits={spec.name: spec.spawn_limit for spec in settings.hub_specs()},
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STANDBY_GRACE_SECONDS):
                await stop.wait()
        if not stop.is_set():
            others = [q for p, q in enumerate(queues) if p not in home]
            subscriptions += await _subscribe(channel, deliveries, others)
        log.info("consumer running", home=home)
        await stop.wait()
        await _unsubscribe(subscriptions)
        await deliveries.drain(SHUTDOWN_GRACE_SECONDS)
        await relay
        await culler
        await hub_health
        await channel.close()
