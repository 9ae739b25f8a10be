"""``orchestrator servers``: the servers the orchestrator knows, and apps' cull policies.

``servers list`` shows each workspace's server (running or not, last user activity,
a scheduled cull and its deadline); ``servers summary`` one line per app: servers
running, culls scheduled, servers culled by reason, and the spawn line's length
(time to ready is the ``orch_spawn_seconds`` histogram); ``servers policy APP`` shows
or sets an app's culling policy (idle timeout, max age, grace; 0 turns a rule off).
"""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.operator.tables import print_rows
from runtime.db.apps import AppStore, CullPolicy
from runtime.db.engine import create_schema, make_engine, make_sessionmaker
from runtime.db.servers import ServerStore, culls_by_reason
from runtime.db.spawn_slots import spawns_waiting
from runtime.settings import CommonSettings


def _when(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


async def _summary(sessions: Any) -> list[dict[str, Any]]:
    """One row per app with servers or culls."""
    servers = await ServerStore(sessions).all()
    culled = await culls_by_reason(sessions)
    line = await spawns_waiting(sessions)
    apps = sorted({r.app for r in servers} | {app for app, _ in culled})
    return [
        {
            "app": app,
            "running": sum(1 for r in servers if r.app == app and r.running),
            "culls_scheduled": sum(1 for r in servers if r.app == app and r.cull_deadline),
            "culled_idle": culled.get((app, "idle"), 0),
            "culled_max_age": culled.get((app, "max_age"), 0),
            "spawn_line": line,
        }
        for app in apps
    ]


async def run_servers(settings: CommonSettings, args: argparse.Namespace) -> int:
    """Perform one ``servers`` action against the database; 0 on success."""
    engine = make_engine(settings.database_url.get_secret_value())
    await create_schema(engine)
    sessions = make_sessionmaker(engine)
    try:
        if args.action == "policy":
            apps = AppStore(sessions)
            wanted = CullPolicy(args.idle_timeout, args.max_age, args.grace)
            if wanted != CullPolicy() and not await apps.set_cull_policy(args.app, wanted):
                print(f"no app named {args.app!r}")
                return 1
            policy = (await apps.cull_policies()).get(args.app)
            if policy is None:
                print(f"no app named {args.app!r}")
                return 1
            row = {
                "app": args.app,
                "idle_timeout_seconds": policy.idle_timeout_seconds,
                "max_age_seconds": policy.max_age_seconds,
                "cull_grace_seconds": policy.cull_grace_seconds,
            }
            print_rows([row], as_json=args.json)
            return 0
        if args.action == "summary":
            print_rows(await _summary(sessions), as_json=args.json)
            return 0
        rows = [
            {
                "app": r.app,
                "user": r.user,
                "workspace": r.workspace,
                "running": r.running,
                "started_at": _when(r.started_at),
                "last_activity": _when(r.last_activity),
                "cull": r.cull_reason,
                "cull_deadline": _when(r.cull_deadline),
            }
            for r in await ServerStore(sessions).all()
            if r.running or args.all
        ]
        print_rows(rows, as_json=args.json)
        return 0
    finally:
        await engine.dispose()
