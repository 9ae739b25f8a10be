"""Notebook traffic for the scenarios: open notebooks, change them, save them in a loop.

Content is changed through the real contents API of each user's server (as the
orchestrator service, whose role holds ``access:servers``), so that every ``save``
command sees new content and must make exactly one version.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from devstack.reliability.load import RELIABILITY_APP, run_command
from devstack.stack import LocalStack
from schemas.workspaces import workspace_name

NOTEBOOK_PATH = "reliability/notebook.ipynb"


def notebook_content(marker: str) -> dict[str, Any]:
    """A valid nbformat 4.5 notebook whose only cell says ``marker``."""
    return {
        "cells": [{"cell_type": "markdown", "id": "marker", "metadata": {}, "source": marker}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


async def put_notebook(
    http: aiohttp.ClientSession,
    stack: LocalStack,
    user: str,
    path: str,
    marker: str,
    *,
    hub_url: str | None = None,
) -> int:
    """Write a notebook saying ``marker`` at ``path`` in ``user``'s server (the scenarios'
    app's workspace of ``user``) through the Hub at ``hub_url`` (the first Hub's for
    None); the HTTP status."""
    hub_user = workspace_name(RELIABILITY_APP, user)
    url = f"{hub_url or stack.hub.url}/user/{quote(hub_user)}/api/contents/{quote(path)}"
    body = {"type": "notebook", "format": "json", "content": notebook_content(marker)}
    headers = {"Authorization": f"token {stack.service_token}"}
    async with http.put(url, json=body, headers=headers) as response:
        await response.read()
        return response.status


async def run_commands(
    stack: LocalStack, app_key: str, commands: list[dict[str, Any]], *, within: float
) -> list[dict[str, Any]]:
    """Send ``commands`` at once and wait for each to be final; their last status views."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within + 60)) as http:
        return list(
            await asyncio.gather(
                *(run_command(http, stack.gateway_url, app_key, c, within=within) for c in commands)
            )
        )


async def open_notebooks(
    stack: LocalStack, app_key: str, users: list[str], *, within: float = 300
) -> list[str]:
    """Send ``open`` of :data:`NOTEBOOK_PATH` for every one of ``users`` (their servers
    spawn) and wait; the users whose ``open`` did not succeed."""
    opened = await run_commands(
        stack,
        app_key,
        [{"type": "open", "user": u, "path": NOTEBOOK_PATH} for u in users],
        within=within,
    )
    return [v["user"] for v in opened if v["status"] != "succeeded"]


@dataclass
class SaveLoop:
    """Per user: write new content, send ``save``, wait until it is final; repeat.

    Records each save's last status view; a save that did not finish in ``timeout``
    is recorded as it was, and the loop goes on with the next content. With
    ``unavailable_for``, a save answered 503 (or refused by a gateway that is gone) is
    sent again, round the ``gateways`` (default: the stack's), for up to that long.
    """

    stack: LocalStack
    app_key: str
    user: str
    path: str = NOTEBOOK_PATH
    timeout: float = 120.0
    gateways: list[str] = field(default_factory=list)
    unavailable_for: float = 0.0
    saves: list[dict[str, Any]] = field(default_factory=list)
    write_failures: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Save until ``stop`` is set (the save in progress is finished first)."""
        client_timeout = aiohttp.ClientTimeout(total=self.timeout + 60)
        async with aiohttp.ClientSession(timeout=client_timeout) as http:
            revision = 0
            while not stop.is_set():
                revision += 1
                marker = f"{self.user} revision {revision} at {time.time():.3f}"
                if await put_notebook(http, self.stack, self.user, self.path, marker) >= 300:
                    self.write_failures += 1
                    await asyncio.sleep(0.5)  # the server is briefly unavailable: retry
                    continue
                command = {"type": "save", "user": self.user, "path": self.path}
                view = await run_command(
                    http,
                    self.gateways or self.stack.gateway_url,
                    self.app_key,
                    command,
                    within=self.timeout,
                    unavailable_for=self.unavailable_for,
                )
                self.saves.append(view)

    @property
    def command_ids(self) -> list[str]:
        """Ids of the save commands sent."""
        return [str(view["id"]) for view in self.saves]
