"""The gateway's application factory: routes, middleware and resources."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from orchestrator.gateway import (
    commands_api,
    diffs_api,
    event_stream,
    health,
    notebooks_api,
    openapi,
    views_api,
)
from orchestrator.gateway.auth import AUTH, AppKeyCache, authenticate
from orchestrator.gateway.command_waiters import WAITERS, CommandWaiters
from orchestrator.gateway.context import (
    AMQP,
    APPS,
    BROKER_PROBE,
    COMMANDS,
    DIFFS,
    NOTEBOOK_WORKER,
    NOTEBOOKS,
    PUBLISHER,
    SETTINGS,
    WORKSPACES,
)
from orchestrator.gateway.embed_api import setup_embedding
from orchestrator.gateway.middleware import correlation, timing
from runtime.bus.lifecycle import confirmed_bus
from runtime.bus.probe import BrokerProbe
from runtime.db.apps import AppStore
from runtime.db.commands import CommandStore
from runtime.db.diffs import DiffCache
from runtime.db.engine import create_schema, make_engine, make_sessionmaker
from runtime.db.notebooks import NotebookStore
from runtime.db.workspaces import WorkspaceStore
from runtime.http_errors import json_errors
from runtime.notebook_worker import NotebookWorker
from runtime.settings import GatewaySettings


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = make_engine(app[SETTINGS].database_url.get_secret_value())
    await create_schema(engine)
    sessions = make_sessionmaker(engine)
    app[COMMANDS] = CommandStore(sessions)
    app[NOTEBOOKS] = NotebookStore(sessions)
    app[WORKSPACES] = WorkspaceStore(sessions, app[SETTINGS].hub_specs())
    app[APPS] = AppStore(sessions)
    app[AUTH] = AppKeyCache(app[APPS].authenticate, ttl=app[SETTINGS].auth_cache_seconds)
    app[DIFFS] = DiffCache(sessions)
    app[NOTEBOOK_WORKER] = NotebookWorker()  # its process starts with the first diff or view
    yield
    await app[NOTEBOOK_WORKER].close()
    await app[COMMANDS].close()
    await engine.dispose()


async def _broker(app: web.Application) -> AsyncIterator[None]:
    async with confirmed_bus(app[SETTINGS], name="gateway") as (connection, publisher):
        app[AMQP] = connection
        app[PUBLISHER] = publisher
        app[BROKER_PROBE] = BrokerProbe(connection)
        yield


def create_app(settings: GatewaySettings) -> web.Application:
    """Build the gateway: correlation ids, JSON errors, app-key auth, the v1 API, health,
    metrics and the OpenAPI document."""
    app = web.Application(
        middlewares=[timing, correlation, json_errors, authenticate],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[WAITERS] = CommandWaiters()
    app[event_stream.BROADCASTER] = event_stream.EventBroadcaster()
    app[openapi.OPENAPI] = openapi.build_openapi(settings)
    app.cleanup_ctx.extend([_database, _broker, event_stream.event_listener_ctx])
    for table in (
        health.routes,
        commands_api.routes,
        notebooks_api.routes,
        diffs_api.routes,
        views_api.routes,
        event_stream.routes,
        openapi.routes,
    ):
        app.router.add_routes(table)
    setup_embedding(app)
    return app
