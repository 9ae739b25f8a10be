"""Liveness (``/healthz``) and readiness (``/readyz``: broker connected, DB answers)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from orchestrator.gateway.context import AMQP, COMMANDS

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """The process is alive."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready to accept commands: the broker connection is open and the DB answers."""
    checks: dict[str, str] = {}
    connection = request.app[AMQP]
    checks["broker"] = "ok" if not connection.is_closed else "down"
    try:
        async with request.app[COMMANDS].sessions() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"down: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )
