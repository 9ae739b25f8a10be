"""Entry point of the gateway process."""

from __future__ import annotations

import asyncio
import gc

import structlog
from aiohttp import web

from orchestrator.gateway.app import create_app
from runtime.settings import GatewaySettings

log = structlog.get_logger(__name__)


async def serve_gateway(settings: GatewaySettings, stop: asyncio.Event) -> None:
    """Serve the gateway on loopback (or the configured host) until ``stop``."""
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port, backlog=1024)
    await site.start()
    # Everything built at start-up lives as long as the process: keep it out of the
    # collector's scans, so a full collection under load takes ~1 ms instead of ~50.
    gc.collect()
    gc.freeze()
    log.info("gateway listening", url=f"http://{settings.gateway_host}:{settings.gateway_port}")
    await stop.wait()
    await runner.cleanup()
