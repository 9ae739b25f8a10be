"""Typed application keys and per-request context shared by the gateway's modules."""

from __future__ import annotations

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from runtime.bus.probe import BrokerProbe
from runtime.bus.publisher import ConfirmedPublisher
from runtime.db.apps import AppIdentity, AppStore
from runtime.db.commands import CommandStore
from runtime.db.diffs import DiffCache
from runtime.db.notebooks import NotebookStore
from runtime.db.workspaces import WorkspaceStore
from runtime.notebook_worker import NotebookWorker
from runtime.settings import GatewaySettings

SETTINGS = web.AppKey("settings", GatewaySettings)
COMMANDS = web.AppKey("commands", CommandStore)
NOTEBOOKS = web.AppKey("notebooks", NotebookStore)
APPS = web.AppKey("apps", AppStore)
AMQP = web.AppKey("amqp", AbstractRobustConnection)
PUBLISHER = web.AppKey("publisher", ConfirmedPublisher)
BROKER_PROBE = web.AppKey("broker_probe", BrokerProbe)
WORKSPACES = web.AppKey("workspaces", WorkspaceStore)
DIFFS = web.AppKey("diffs", DiffCache)
NOTEBOOK_WORKER = web.AppKey("notebook_worker", NotebookWorker)

REQUEST_APP = "orch.app"
REQUEST_CORRELATION_ID = "orch.correlation_id"


def current_app(request: web.Request) -> AppIdentity:
    """The authenticated app of this request (set by the auth middleware)."""
    identity: AppIdentity = request[REQUEST_APP]
    return identity


def correlation_id(request: web.Request) -> str:
    """The correlation id of this request (given by the caller or generated)."""
    value: str = request[REQUEST_CORRELATION_ID]
    return value
