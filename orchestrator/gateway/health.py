"""Operational endpoints: liveness (``/healthz``), readiness (``/readyz``: broker
and DB answer) and Prometheus metrics (``/metrics``). None needs an app key."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from orchestrator.gateway.context import BROKER_PROBE, COMMANDS, SETTINGS

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is alive (``instance`` is the ``ORCH_INSTANCE`` it was started with)."""
    return web.json_response({"status": "ok", "instance": request.app[SETTINGS].instance})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready to accept commands: the broker answers a round trip within 2 s and the DB
    answers.

    503 while either is down or frozen, so a load balancer stops sending commands that
    would be answered 503 anyway.
    """
    checks: dict[str, str] = {}
    checks["broker"] = await request.app[BROKER_PROBE].problem() or "ok"
    try:
        async with request.app[COMMANDS].sessions() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"down: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {
            "status": "ready" if ready else "not ready",
            "checks": checks,
            "instance": request.app[SETTINGS].instance,
        },
        status=200 if ready else 503,
    )


@routes.get("/metrics")
async def metrics(_request: web.Request) -> web.Response:
    """This process's Prometheus metrics (text exposition format)."""
    response = web.Response(body=generate_latest(REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
