"""The save extension: a jupyter_server extension enabled in every single-user server.

It listens to the contents service's events (``save``, ``rename``, ``delete``; ``copy``
counts as a save of the copy; every ``get`` is ignored) and hands each one to a
:class:`NotificationSender`, which forwards it to the hub service in the background.
The listener only queues, so it never blocks or fails a save. Configuration comes
from the environment the Hub and the local stack give the server:
``ORCH_NOTIFY_URL``, ``JUPYTERHUB_API_TOKEN`` and ``JUPYTERHUB_USER``.

It also registers the flush bridge (:mod:`hub_service.bridge_api`), with or without
that environment: the orchestrator's request that the open pages save their edits.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hub_service.bridge_api import bridge_handlers
from hub_service.flush_board import FlushBoard
from hub_service.notify_queue import PendingChange
from hub_service.notify_sender import NotificationSender, SenderConfig
from schemas.names import normalise_relative_path
from schemas.notifications import ContentsAction

CONTENTS_SCHEMA_ID = "https://events.jupyter.org/jupyter_server/contents_service/v1"
NOTIFY_URL_ENV = "ORCH_NOTIFY_URL"
_ACTIONS = {
    "save": ContentsAction.SAVE,
    "copy": ContentsAction.SAVE,
    "rename": ContentsAction.RENAME,
    "delete": ContentsAction.DELETE,
}


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Tell jupyter_server where the extension's loader lives."""
    return [{"module": "hub_service.extension"}]


def change_from_event(data: dict[str, Any]) -> PendingChange | None:
    """The change to forward for one contents event, or None for events we skip.

    Skipped: reads, saves of files that are not notebooks, and paths the orchestrator
    could never store (hidden segments such as checkpoints, '..').
    """
    action = _ACTIONS.get(str(data.get("action")))
    if action is None:
        return None
    try:
        path = normalise_relative_path(str(data.get("path", "")).lstrip("/"))
        source = data.get("source_path")
        source_path = normalise_relative_path(str(source).lstrip("/")) if source else None
    except ValueError:
        return None
    if action == ContentsAction.SAVE and not path.endswith(".ipynb"):
        return None
    if action == ContentsAction.RENAME and source_path is None:
        return None
    return PendingChange(
        action=action,
        path=path,
        source_path=source_path if action == ContentsAction.RENAME else None,
    )


class ContentsEventForwarder:
    """The event-logger listener: turns contents events into queued changes."""

    def __init__(self, sender: NotificationSender, log: logging.Logger) -> None:
        self.sender = sender
        self._log = log

    async def __call__(
        self, *, logger: Any = None, schema_id: str = "", data: dict[str, Any], **_: Any
    ) -> None:
        """Queue the change (never raises: the save already happened and must stand).

        jupyter_events calls listeners with the keywords ``logger``, ``schema_id`` and
        ``data`` when it creates their task inside ``emit``: a signature mismatch would
        raise inside the save itself, so extra keywords are tolerated.
        """
        try:
            change = change_from_event(data)
            if change is not None:
                self.sender.submit(change)
        except Exception:  # a broken hint must never surface in the contents API
            self._log.exception("hub_service.extension: could not queue a save notification")


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the flush bridge, then the save listener.

    The bridge (see :mod:`hub_service.bridge_api`) is always registered; the listener
    needs the notify environment and, without it, is left off with one warning.
    """
    log = serverapp.log
    web_app = serverapp.web_app
    web_app.add_handlers(".*$", bridge_handlers(web_app.settings["base_url"], FlushBoard()))
    notify_url = os.environ.get(NOTIFY_URL_ENV, "")
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    user = os.environ.get("JUPYTERHUB_USER", "")
    if not (notify_url and token and user):
        log.warning(
            "hub_service.extension: %s, JUPYTERHUB_API_TOKEN or JUPYTERHUB_USER unset; "
            "save notifications are off",
            NOTIFY_URL_ENV,
        )
        return
    config = SenderConfig(notify_url=notify_url, api_token=token, user=user)
    sender = NotificationSender(config, log)
    forwarder = ContentsEventForwarder(sender, log)
    serverapp.event_logger.add_listener(schema_id=CONTENTS_SCHEMA_ID, listener=forwarder)
    web_app.settings["orch_save_forwarder"] = forwarder
    log.info("hub_service.extension: forwarding save notifications to %s", notify_url)
