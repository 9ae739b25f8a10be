"""``orchestrator hubs``: the configured JupyterHubs, and draining one.

``hubs list`` shows per Hub its weight, whether it takes new users (draining, health
and the last check's error), the users placed on it, their servers running, spawns in
progress and spawns waiting in its line. ``hubs drain NAME`` stops new placements on
a Hub (its users stay and keep working); ``hubs undrain NAME`` resumes them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.operator.tables import print_rows
from runtime.db.engine import create_schema, make_engine, make_sessionmaker
from runtime.db.hub_status import HubStatusStore
from runtime.db.models import ServerRecord, SpawnSlot, WorkspaceRecord
from runtime.db.spawn_slots import spawns_waiting
from runtime.hubs import HubSpec
from runtime.settings import HubsSettings
from schemas.commands import utcnow


async def _per_hub(
    sessions: async_sessionmaker[AsyncSession], first: str
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Users, servers running and spawns in progress by Hub (a workspace recorded with
    no Hub lives on ``first``)."""
    async with sessions() as session:
        users = (
            await session.exec(
                select(WorkspaceRecord.hub, func.count()).group_by(col(WorkspaceRecord.hub))
            )
        ).all()
        running = (
            await session.exec(
                select(WorkspaceRecord.hub, func.count())
                .join(ServerRecord, col(ServerRecord.workspace) == col(WorkspaceRecord.name))
                .where(col(ServerRecord.running))
                .group_by(col(WorkspaceRecord.hub))
            )
        ).all()
        spawning = (
            await session.exec(
                select(SpawnSlot.hub, func.count())
                .where(col(SpawnSlot.holder).is_not(None), col(SpawnSlot.expires_at) > utcnow())
                .group_by(col(SpawnSlot.hub))
            )
        ).all()

    def by_hub(rows: Any) -> dict[str, int]:
        counts: dict[str, int] = {}
        for hub, count in rows:
            counts[hub or first] = counts.get(hub or first, 0) + int(count)
        return counts

    return by_hub(users), by_hub(running), by_hub(spawning)


async def hub_rows(
    sessions: async_sessionmaker[AsyncSession], specs: list[HubSpec]
) -> list[dict[str, Any]]:
    """One row per configured Hub (and per Hub still holding users but no longer
    configured, marked so)."""
    statuses = await HubStatusStore(sessions).statuses()
    users, running, spawning = await _per_hub(sessions, specs[0].name)
    configured = {spec.name: spec for spec in specs}
    names = list(configured) + sorted(set(users) - set(configured))
    rows = []
    for name in names:
        status = statuses.get(name)
        spec = configured.get(name)
        health = "unknown" if status is None or status.checked_at is None else "up"
        if status is not None and not status.healthy:
            health = "down"
        rows.append(
            {
                "hub": name,
                "weight": spec.weight if spec else "(not configured)",
                "new_users": "draining" if status and status.draining else "yes",
                "health": health,
                "users": users.get(name, 0),
                "running": running.get(name, 0),
                "spawning": spawning.get(name, 0),
                "spawn_line": await spawns_waiting(sessions, name),
                "spawn_limit": spec.spawn_limit if spec else "",
                "checked_at": status.checked_at.isoformat(timespec="seconds")
                if status and status.checked_at
                else None,
                "error": status.error if status and not status.healthy else None,
            }
        )
    return rows


async def run_hubs(settings: HubsSettings, args: argparse.Namespace) -> int:
    """Perform one ``hubs`` action against the database; 0 on success."""
    engine = make_engine(settings.database_url.get_secret_value())
    await create_schema(engine)
    sessions = make_sessionmaker(engine)
    specs = settings.hub_specs()
    try:
        if args.action in ("drain", "undrain"):
            if args.name not in {spec.name for spec in specs}:
                names = ", ".join(spec.name for spec in specs)
                print(
                    f"no Hub named {args.name!r} is configured (configured: {names})",
                    file=sys.stderr,
                )
                return 1
            await HubStatusStore(sessions).set_draining(args.name, args.action == "drain")
            done = "takes no new users" if args.action == "drain" else "takes new users again"
            print(f"Hub {args.name} {done}")
            return 0
        print_rows(await hub_rows(sessions, specs), as_json=args.json)
        return 0
    finally:
        await engine.dispose()
