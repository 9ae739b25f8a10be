"""What changed between versions, on the real stack: ``notebook.saved`` carries a change
summary of each save made in Jupyter, and ``GET /v1/versions/{id}/diff`` returns nbdime's
diff (against the version before, or a named one), cached by the contents' hashes, with
large outputs compared by hash; another app's key finds no such version."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import nbformat
import psutil
import pytest
from sqlmodel import select

from devstack.command_client import CommandClient, JupyterFiles
from devstack.stack import LocalStack
from orchestrator.operator.subscribe import EventSubscription, subscribe_events
from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.models import NotebookDiff
from runtime.notebook_worker import (
    NOTEBOOK_MAX_BYTES,
    NotebookTooLarge,
    NotebookWorker,
    WorkTooSlow,
)
from tests.conftest import TEST_APP

PATH = "diffs.ipynb"


def cells(*sources: str, output_bytes: int = 0) -> dict[str, Any]:
    """A notebook of code cells with stable ids (``c0``, ``c1``...), the last one with an
    output of ``output_bytes`` when given."""
    made = []
    for index, source in enumerate(sources):
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = source.split("=")[0].strip() or f"c{index}"
        made.append(cell)
    if output_bytes:
        text = "x" * output_bytes
        made[-1]["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return dict(nbformat.v4.new_notebook(cells=made))


async def _saved(events: EventSubscription, user: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        got = await events.first(
            lambda e: (
                e.data.get("user") == user
                and e.data.get("path") == PATH
                and e.data.get("origin") == "jupyter"
            )
        )
    return got.data


async def _diff(
    http: aiohttp.ClientSession, stack: LocalStack, key: str, version: str, **query: str
) -> tuple[int, dict[str, Any]]:
    async with http.get(
        f"{stack.gateway_url}/v1/versions/{version}/diff",
        params=query,
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        return response.status, await response.json()


async def test_saves_carry_a_change_summary_and_versions_diff_against_the_one_before(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    user = f"diff{uuid.uuid4().hex[:6]}"
    app = CommandClient(http, stack.gateway_url, app_key)
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app=TEST_APP)
    first = await app.succeed({"type": "open", "user": user, "path": PATH})
    assert first["restored_version_id"] is None
    async with subscribe_events(stack.broker.amqp_url, ["notebook.saved"]) as events:
        await files.write(user, PATH, cells("a = 1", "b = 2"))
        two = await _saved(events, user)
        await files.write(user, PATH, cells("a = 10", "c = 3"))
        three = await _saved(events, user)
        await files.write(user, PATH, cells("a = 10", "c = 3", output_bytes=200_000))
        big = await _saved(events, user)
    assert two["changes"] == {"cells_added": 2, "cells_removed": 0, "cells_changed": 0}
    assert three["changes"] == {"cells_added": 1, "cells_removed": 1, "cells_changed": 1}
    assert big["changes"] == {"cells_added": 0, "cells_removed": 0, "cells_changed": 1}

    status, diff = await _diff(http, stack, app_key, three["version_id"])
    assert status == 200, diff
    assert (diff["from"]["id"], diff["to"]["id"]) == (
        two["version_id"],
        three["version_id"],
    )
    assert diff["summary"] == three["changes"]
    assert [c["change"] for c in diff["cells"]] == ["changed", "removed", "added"]
    assert diff["diff"] and diff["diff"][0]["key"] == "cells"  # nbdime's, on the cells
    again = await _diff(http, stack, app_key, three["version_id"])
    assert again == (200, diff)
    engine = make_engine(stack.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            cached = (await session.exec(select(NotebookDiff))).all()
    finally:
        await engine.dispose()
    assert any(row.result["summary"] == three["changes"] for row in cached)

    async with http.get(
        f"{stack.gateway_url}/v1/users/{user}/versions",
        params={"path": PATH},
        headers={"Authorization": f"Bearer {app_key}"},
    ) as response:
        first_id = (await response.json())["versions"][-1]["id"]  # the open's
    status, wide = await _diff(http, stack, app_key, three["version_id"], against=first_id)
    assert status == 200 and wide["summary"]["cells_added"] == 2, wide
    status, stripped = await _diff(http, stack, app_key, big["version_id"])
    assert status == 200 and stripped["outputs_stripped"] == 1, stripped
    assert stripped["summary"]["cells_changed"] == 1

    status, none_before = await _diff(http, stack, app_key, first_id)
    assert (status, none_before["error"]["code"]) == (404, "not_found"), none_before
    other_key = await asyncio.to_thread(stack.issue_app_key, f"other-{uuid.uuid4().hex[:6]}")
    status, hidden = await _diff(http, stack, other_key, three["version_id"])
    assert (status, hidden["error"]["code"]) == (404, "not_found"), hidden
    status, bad = await _diff(http, stack, app_key, three["version_id"], against="nope")
    assert (status, bad["error"]["code"]) == (422, "invalid_parameter"), bad


async def test_a_diff_over_the_time_limit_ends_its_worker_and_the_next_diff_works() -> None:
    many = cells(*(f"v{i} = {i}" for i in range(3000)))
    changed = cells(*(f"v{i} = {i + 1}" for i in range(3000)))
    before, after = json.dumps(many), json.dumps(changed)
    slow = NotebookWorker(timeout_seconds=0.001)
    await slow.start()  # the start (nbdime's import) is not timed
    first_pid = slow.pid
    with pytest.raises(WorkTooSlow):
        await slow.diff(before, after)
    assert first_pid is not None and not psutil.pid_exists(first_pid)  # killed, reaped
    worker = NotebookWorker()
    try:
        result = await worker.diff(json.dumps(cells("a = 1")), json.dumps(cells("a = 2")))
    finally:
        await worker.close()
        await slow.close()
    assert result["summary"] == {"cells_added": 0, "cells_removed": 0, "cells_changed": 1}
    with pytest.raises(NotebookTooLarge):
        await worker.diff("x" * (NOTEBOOK_MAX_BYTES + 1), "{}")
