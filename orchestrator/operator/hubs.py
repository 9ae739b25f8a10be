"""``orchestrator hubs``: the configured JupyterHubs, and draining one.

``hubs list`` shows per Hub its weight, whether it takes new users (draining, health
and the last check's error), the users placed on it, their servers running, spawns in
progress and spawns waiting in its line. ``hubs drain NAME`` stops new placements on
a Hub (its users stay and keep working; with ``--move`` they all move off it);
``hubs undrain NAME`` resumes them. ``hubs move USER --to NAME`` moves one workspace
(:mod:`orchestrator.operator.hub_moves`).
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.operator.hub_moves import (
    PlannedMove,
    complain,
    find_workspace,
    move_rows,
    plan_drain,
    submit_moves,
)
from orchestrator.operator.tables import print_rows
from runtime.db.engine import create_schema, make_engine, make_sessionmaker
from runtime.db.hub_status import HubStatusStore, hub_counts
from runtime.db.spawn_slots import spawns_waiting
from runtime.hubs import HubSpec
from runtime.settings import HubsSettings


async def hub_rows(
    sessions: async_sessionmaker[AsyncSession], specs: list[HubSpec]
) -> list[dict[str, Any]]:
    """One row per configured Hub (and per Hub still holding users but no longer
    configured, marked so)."""
    statuses = await HubStatusStore(sessions).statuses()
    counts = await hub_counts(sessions, specs[0].name)
    users, running, spawning = counts.users, counts.running, counts.spawning
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


def _unknown(name: str, specs: list[HubSpec]) -> str:
    names = ", ".join(spec.name for spec in specs)
    return f"no Hub named {name!r} is configured (configured: {names})"


async def _move(
    settings: HubsSettings,
    sessions: async_sessionmaker[AsyncSession],
    specs: list[HubSpec],
    args: argparse.Namespace,
) -> int:
    """``hubs move USER --to NAME``: one workspace."""
    if args.to not in {spec.name for spec in specs}:
        return complain(_unknown(args.to, specs))
    record = await find_workspace(sessions, args.user, args.app)
    if record is None:
        whose = f"of {args.user!r} in app {args.app!r}" if args.app else f"named {args.user!r}"
        return complain(f"no workspace {whose} is recorded")
    moves = [PlannedMove(record, record.hub or specs[0].name, args.to)]
    return await _submit_and_show(settings, sessions, moves, args)


async def _drain_moving(
    settings: HubsSettings,
    sessions: async_sessionmaker[AsyncSession],
    specs: list[HubSpec],
    args: argparse.Namespace,
) -> int:
    """``hubs drain NAME --move``: every workspace on the Hub moves off it."""
    if args.to is not None and args.to not in {spec.name for spec in specs}:
        return complain(_unknown(args.to, specs))
    try:
        moves = await plan_drain(sessions, specs, args.name, args.to)
    except LookupError as exc:
        return complain(str(exc))
    return await _submit_and_show(settings, sessions, moves, args)


async def _submit_and_show(
    settings: HubsSettings,
    sessions: async_sessionmaker[AsyncSession],
    moves: list[PlannedMove],
    args: argparse.Namespace,
) -> int:
    """Submit the moves and print a row each (after they finished, with ``--wait``);
    1 when a move failed or did not finish in time."""
    ids = await submit_moves(settings, sessions, moves)
    rows = await move_rows(sessions, moves, ids, wait_seconds=args.wait)
    print_rows(rows, as_json=args.json)
    unfinished = args.wait is not None and any(r["status"] != "succeeded" for r in rows)
    return 1 if unfinished else 0


async def run_hubs(settings: HubsSettings, args: argparse.Namespace) -> int:
    """Perform one ``hubs`` action against the database; 0 on success."""
    engine = make_engine(settings.database_url.get_secret_value())
    await create_schema(engine)
    sessions = make_sessionmaker(engine)
    specs = settings.hub_specs()
    try:
        if args.action == "move":
            return await _move(settings, sessions, specs, args)
        if args.action in ("drain", "undrain"):
            if args.name not in {spec.name for spec in specs}:
                return complain(_unknown(args.name, specs))
            await HubStatusStore(sessions).set_draining(args.name, args.action == "drain")
            done = "takes no new users" if args.action == "drain" else "takes new users again"
            print(f"Hub {args.name} {done}")
            if args.action == "drain" and args.move:
                return await _drain_moving(settings, sessions, specs, args)
            return 0
        print_rows(await hub_rows(sessions, specs), as_json=args.json)
        return 0
    finally:
        await engine.dispose()
