"""A consumer's small HTTP side door: ``/metrics``, ``/healthz`` and ``/readyz``.

Bound to 127.0.0.1 on ``ORCH_METRICS_PORT``. ``/healthz`` answers while the event
loop runs; ``/readyz`` answers 200 only while the readiness probe says so (broker
connected and partitions subscribed), else 503 with the reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessProbe = Callable[[], str | None]
"""Returns None when ready, else why not."""
Details = Callable[[], dict[str, object]]
"""Extra members of the ``/readyz`` body (e.g. each Hub's state)."""

PROBE: web.AppKey[ReadinessProbe] = web.AppKey("probe")
DETAILS: web.AppKey[Details] = web.AppKey("details")
INSTANCE: web.AppKey[str] = web.AppKey("instance", str)


async def _metrics(_request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "instance": request.app[INSTANCE]})


async def _readyz(request: web.Request) -> web.Response:
    problem = request.app[PROBE]()
    instance = request.app[INSTANCE]
    details = request.app[DETAILS]() if DETAILS in request.app else {}
    if problem is not None:
        return web.json_response(
            {"status": "not ready", "reason": problem, "instance": instance, **details},
            status=503,
        )
    return web.json_response({"status": "ready", "instance": instance, **details})


def create_health_app(
    probe: ReadinessProbe, instance: str = "", details: Details | None = None
) -> web.Application:
    """The aiohttp app serving the three endpoints; ``instance`` is echoed by the probes,
    ``details`` adds to ``/readyz``."""
    app = web.Application()
    app[PROBE] = probe
    app[INSTANCE] = instance
    if details is not None:
        app[DETAILS] = details
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


@contextlib.asynccontextmanager
async def serve_health(
    port: int | None, probe: ReadinessProbe, instance: str = "", details: Details | None = None
) -> AsyncIterator[None]:
    """Serve the endpoints on 127.0.0.1:``port`` for the duration (nothing if None)."""
    if port is None:
        yield
        return
    runner = web.AppRunner(create_health_app(probe, instance, details), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield
    finally:
        await runner.cleanup()
