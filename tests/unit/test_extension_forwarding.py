"""The save extension inside a real contents manager, against a stand-in hub service.

The contents manager and its event logger are jupyter_server's own; only the hub
service is a small in-process HTTP server that records what it is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from aiohttp import web
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

from devstack.ports import free_port
from hub_service.extension import CONTENTS_SCHEMA_ID, ContentsEventForwarder, change_from_event
from hub_service.notify_queue import Backoff
from hub_service.notify_sender import NotificationSender, SenderConfig
from schemas.notifications import ContentsAction

TOKEN = "server-token-for-tests"
log = logging.getLogger("test-extension")


class StandInService:
    """Records POST /notify bodies; answers with ``status`` (202 unless told otherwise)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 202
        self.received: list[dict[str, Any]] = []
        self.auth: list[str] = []
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    async def _notify(self, request: web.Request) -> web.Response:
        self.auth.append(request.headers.get("Authorization", ""))
        if self.status < 300:
            self.received.append(await request.json())
        async with self._arrived:
            self._arrived.notify_all()
        return web.json_response({}, status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/notify", self._notify)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, *, requests: bool = False) -> None:
        """Until ``count`` notifications were accepted (or requests made)."""
        await self.wait_until(lambda: len(self.auth if requests else self.received) >= count)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Until ``condition`` holds after some request (10 s at most)."""
        async with asyncio.timeout(10), self._arrived:
            await self._arrived.wait_for(condition)


@pytest.fixture
async def forwarding(
    tmp_path: Path,
) -> AsyncIterator[tuple[AsyncFileContentsManager, NotificationSender, StandInService]]:
    service = StandInService(free_port())
    config = SenderConfig(
        notify_url=f"http://127.0.0.1:{service.port}", api_token=TOKEN, user="ann"
    )
    sender = NotificationSender(config, log, backoff=Backoff(initial=0.05, maximum=0.2))
    contents = AsyncFileContentsManager(root_dir=str(tmp_path))
    contents.event_logger.add_listener(
        schema_id=CONTENTS_SCHEMA_ID, listener=ContentsEventForwarder(sender, log)
    )
    try:
        yield contents, sender, service
    finally:
        await sender.close()
        await service.stop()


def notebook_model(text: str) -> dict[str, Any]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    return {"type": "notebook", "format": "json", "content": nb}


async def test_saves_renames_and_deletes_are_forwarded_and_reads_are_not(
    forwarding: tuple[AsyncFileContentsManager, NotificationSender, StandInService],
) -> None:
    contents, _sender, service = forwarding
    await service.start()
    await contents.save(notebook_model("one"), "a.ipynb")
    await contents.save({"type": "file", "format": "text", "content": "x"}, "notes.txt")
    await contents.get("a.ipynb")
    await contents.rename("a.ipynb", "b.ipynb")
    await contents.delete("b.ipynb")
    await service.wait_for(3)
    got = [(n["action"], n["path"], n.get("source_path")) for n in service.received]
    assert got == [
        ("save", "a.ipynb", None),
        ("rename", "b.ipynb", "a.ipynb"),
        ("delete", "b.ipynb", None),
    ]
    assert {n["user"] for n in service.received} == {"ann"}
    assert set(service.auth) == {f"token {TOKEN}"}


async def test_saves_succeed_while_the_service_is_down_and_are_delivered_when_it_returns(
    forwarding: tuple[AsyncFileContentsManager, NotificationSender, StandInService],
) -> None:
    contents, sender, service = forwarding
    for i in range(3):
        model = await contents.save(notebook_model(f"draft {i}"), "a.ipynb")
        assert model["path"] == "a.ipynb"
    await service.start()
    await service.wait_until(lambda: sum(n["coalesced"] for n in service.received) >= 3)
    assert sender.retries >= 1
    assert {n["path"] for n in service.received} == {"a.ipynb"}
    assert sum(n["coalesced"] for n in service.received) == 3
    assert len(service.received) <= 2


async def test_a_refused_notification_is_dropped_not_retried(
    forwarding: tuple[AsyncFileContentsManager, NotificationSender, StandInService],
) -> None:
    contents, sender, service = forwarding
    service.status = 403
    await service.start()
    await contents.save(notebook_model("one"), "a.ipynb")
    await service.wait_for(1, requests=True)
    service.status = 202
    await contents.save(notebook_model("two"), "b.ipynb")
    await service.wait_for(1)
    assert sender.refused == 1
    assert sender.retries == 0
    assert [n["path"] for n in service.received] == ["b.ipynb"]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"action": "get", "path": "a.ipynb"}, None),
        ({"action": "save", "path": "notes.txt"}, None),
        ({"action": "save", "path": "/dir/a.ipynb"}, (ContentsAction.SAVE, "dir/a.ipynb", None)),
        (
            {"action": "copy", "path": "c.ipynb", "source_path": "a.ipynb"},
            (ContentsAction.SAVE, "c.ipynb", None),
        ),
        ({"action": "rename", "path": "d", "source_path": "c"}, (ContentsAction.RENAME, "d", "c")),
        ({"action": "rename", "path": "d"}, None),
        ({"action": "delete", "path": "old.txt"}, (ContentsAction.DELETE, "old.txt", None)),
        ({"action": "save", "path": ".ipynb_checkpoints/a.ipynb"}, None),
        ({"action": "save", "path": "../escape.ipynb"}, None),
    ],
)
def test_which_contents_events_become_changes(
    event: dict[str, Any], expected: tuple[ContentsAction, str, str | None] | None
) -> None:
    change = change_from_event(event)
    got = None if change is None else (change.action, change.path, change.source_path)
    assert got == expected
