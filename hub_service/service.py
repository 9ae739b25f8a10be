"""The hub service process: a JupyterHub-managed aiohttp app receiving save notifications.

The Hub starts it (``orchestrator hub-service``) with ``JUPYTERHUB_API_URL``,
``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_SERVICE_URL`` and ``JUPYTERHUB_SERVICE_PREFIX``
in its environment, restarts it if it exits, and proxies ``/services/NAME/`` to it
without auth. It binds 127.0.0.1 on the port of its service URL. Bus settings come
from ``ORCH_*`` (:class:`HubServiceSettings`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

import aiohttp
import structlog
from aiohttp import web

from hub_service.notify_api import AMQP, BROKER_PROBE, HUB_NAME, PUBLISHER, VERIFIER, add_routes
from hub_service.token_check import TokenVerifier
from runtime.bus.lifecycle import confirmed_bus
from runtime.bus.probe import BrokerProbe
from runtime.http_errors import json_errors
from runtime.logs import configure_logging
from runtime.runner import run_until_signalled
from runtime.settings import HubServiceSettings

log = structlog.get_logger(__name__)
BIND_HOST = "127.0.0.1"
MAX_BODY_BYTES = 64 * 1024

SETTINGS = web.AppKey("settings", HubServiceSettings)


@dataclass(frozen=True)
class HubEnvironment:
    """What the Hub tells a managed service about itself (from ``JUPYTERHUB_*``)."""

    api_url: str
    service_url: str
    service_prefix: str = "/"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> HubEnvironment:
        """Read the Hub's variables; raise KeyError naming a missing one."""
        for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_URL"):
            if not environ.get(name):
                raise KeyError(f"{name} is not set: run this as a JupyterHub-managed service")
        return cls(
            api_url=environ["JUPYTERHUB_API_URL"],
            service_url=environ["JUPYTERHUB_SERVICE_URL"],
            service_prefix=environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/",
        )

    @property
    def port(self) -> int:
        """The port of the service URL (the Hub and the extensions connect there)."""
        parsed = urlparse(self.service_url)
        return parsed.port or (443 if parsed.scheme == "https" else 80)


HUB = web.AppKey("hub", HubEnvironment)


async def _hub_session(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        app[VERIFIER] = TokenVerifier(
            session, app[HUB].api_url, ttl_seconds=app[SETTINGS].token_cache_seconds
        )
        yield


async def _broker(app: web.Application) -> AsyncIterator[None]:
    async with confirmed_bus(app[SETTINGS], name="hub-service") as (connection, publisher):
        app[AMQP] = connection
        app[PUBLISHER] = publisher
        app[BROKER_PROBE] = BrokerProbe(connection)
        yield


def create_app(settings: HubServiceSettings, hub: HubEnvironment) -> web.Application:
    """Build the hub service: JSON errors, the notify API, a broker connection."""
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[HUB] = hub
    if settings.hub_name:
        app[HUB_NAME] = settings.hub_name
    app.cleanup_ctx.extend([_hub_session, _broker])
    add_routes(app, hub.service_prefix)
    return app


async def serve(settings: HubServiceSettings, hub: HubEnvironment, stop: asyncio.Event) -> None:
    """Serve on 127.0.0.1 at the service URL's port until ``stop``."""
    runner = web.AppRunner(create_app(settings, hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, BIND_HOST, hub.port, backlog=1024)
    await site.start()
    log.info("hub service listening", url=f"http://{BIND_HOST}:{hub.port}", pid=os.getpid())
    await stop.wait()
    await runner.cleanup()


def main() -> int:
    """Entry point (``orchestrator hub-service``): configure logging, serve until signalled."""
    settings = HubServiceSettings()
    configure_logging("hub-service", json=settings.log_json)
    try:
        hub = HubEnvironment.from_environ(os.environ)
    except KeyError as exc:
        log.error("cannot start", error=str(exc.args[0]))
        return 2
    run_until_signalled(lambda stop: serve(settings, hub, stop))
    return 0
