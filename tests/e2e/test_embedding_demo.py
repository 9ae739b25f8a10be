"""The journey embedding exists for, in a real browser against the real stack.

The demo app (its own origin, its own app key) opens a notebook in an iframe through a
one-time launch link; the user types into a cell; the app's Save goes through the save
bridge and a ``save`` command; the new version appears in the list live (gateway event
stream) and is in the database; an older version is restored, also over unsaved edits
(which are kept as a version, and never saved over the restore); the demo shows which
cells a version changed (the gateway's diff); Ctrl-S inside Jupyter also makes a version
(through the hub service's save notifications).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from devstack.demo.launcher import DEMO_APP_NAME
from devstack.stack import LocalStack
from tests.e2e.embedding_steps import (
    EVENT_TIMEOUT_MS,
    cell_sources,
    gateway_json,
    load_user,
    new_page,
    open_notebook,
    save_in_app,
    screenshot,
    server_file,
    type_in_first_cell,
    wait_for_status,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
PATH = "work/analysis.ipynb"


@pytest.fixture(scope="module")
def demo_key(stack: LocalStack) -> str:
    """A key of the demo's own app: the versions the demo makes belong to it."""
    return stack.issue_app_key(DEMO_APP_NAME)


async def _streamed_version_containing(
    page: Page,
    http: aiohttp.ClientSession,
    stack: LocalStack,
    demo_key: str,
    known: list[str],
    text: str,
) -> dict[str, Any]:
    """The first jupyter-origin version that streams into the list and contains ``text``."""
    seen = list(known)
    async with asyncio.timeout(EVENT_TIMEOUT_MS / 1000):
        while True:
            fresh = await page.wait_for_function(
                """seen => {
                    const items = document.querySelectorAll('#versions li[data-origin="jupyter"]');
                    const ids = [...items].map(li => li.dataset.versionId)
                        .filter(id => !seen.includes(id));
                    return ids.length > 0 && ids;
                }""",
                arg=seen,
                timeout=EVENT_TIMEOUT_MS,
            )
            for version_id in await fresh.json_value():
                stored: dict[str, Any] = await gateway_json(
                    http, stack, demo_key, f"/v1/versions/{version_id}"
                )
                if text in cell_sources(stored["content"]):
                    return stored
                seen.append(version_id)


async def test_app_save_makes_a_version_live_and_restore_brings_it_back(
    stack: LocalStack,
    demo: str,
    browser: Browser,
    demo_key: str,
    http: aiohttp.ClientSession,
    username: str,
) -> None:
    page = await new_page(browser)
    try:
        await load_user(page, demo, username)
        frame = await open_notebook(page, PATH)
        first = f"first_edit = '{uuid.uuid4().hex[:8]}'"
        await type_in_first_cell(frame, page, first)
        await wait_for_status(page, "dirty")
        await screenshot(page, "01-edited-before-save")

        first_id = await save_in_app(page, None)
        # The list is never reloaded after opening: the item arrives over the event stream.
        await page.wait_for_selector(
            f'#versions li[data-version-id="{first_id}"]', timeout=EVENT_TIMEOUT_MS
        )
        stored = await gateway_json(http, stack, demo_key, f"/v1/versions/{first_id}")
        assert stored["user"] == username and stored["path"] == PATH
        assert first in cell_sources(stored["content"])
        await screenshot(page, "02-saved-version-listed")

        second = f"second_edit = '{uuid.uuid4().hex[:8]}'"
        await type_in_first_cell(frame, page, second)
        second_id = await save_in_app(page, first_id)
        await page.wait_for_selector(
            f'#versions li[data-version-id="{second_id}"]', timeout=EVENT_TIMEOUT_MS
        )
        listed = await gateway_json(
            http, stack, demo_key, f"/v1/users/{username}/versions", path=PATH
        )
        assert {first_id, second_id} <= {v["id"] for v in listed["versions"]}

        await page.click(f'#versions li[data-version-id="{first_id}"] button.restore')
        await page.wait_for_function(
            "path => window.demo.ready === true && window.demo.path === path",
            arg=PATH,
            timeout=EVENT_TIMEOUT_MS,
        )
        restored_cell = frame.locator(".jp-Notebook .jp-Cell .cm-content", has_text=first)
        await restored_cell.first.wait_for(timeout=EVENT_TIMEOUT_MS)
        assert first in cell_sources(await server_file(http, stack, DEMO_APP_NAME, username, PATH))
        await screenshot(page, "03-restored-older-version")
    finally:
        await page.context.close()


async def test_the_demo_shows_which_cells_a_version_changed(
    stack: LocalStack,
    demo: str,
    browser: Browser,
    demo_key: str,
    http: aiohttp.ClientSession,
    username: str,
) -> None:
    page = await new_page(browser)
    try:
        await load_user(page, demo, username)
        frame = await open_notebook(page, "work/changes.ipynb")
        await type_in_first_cell(frame, page, f"before = '{uuid.uuid4().hex[:8]}'")
        first_id = await save_in_app(page, None)
        after = f"after = '{uuid.uuid4().hex[:8]}'"
        await type_in_first_cell(frame, page, after)
        second_id = await save_in_app(page, first_id)
        item = page.locator(f'#versions li[data-version-id="{second_id}"]')
        await item.wait_for(timeout=EVENT_TIMEOUT_MS)  # from notebook.saved, with its summary
        assert "+0 -0 ~1" in await item.locator(".meta").inner_text()

        await item.locator("button.changes").click()
        changed = page.locator('#changed-cells li[data-change="changed"]')
        await changed.first.wait_for(timeout=EVENT_TIMEOUT_MS)
        assert after in await changed.first.inner_text()
        title = await page.inner_text("#changes-title")
        assert title.startswith(f"{second_id[:8]} vs {first_id[:8]}"), title
        diff = await gateway_json(http, stack, demo_key, f"/v1/versions/{second_id}/diff")
        assert diff["summary"] == {"cells_added": 0, "cells_removed": 0, "cells_changed": 1}
        await screenshot(page, "04-changes-of-a-version")
    finally:
        await page.context.close()


async def test_a_restore_over_unsaved_edits_keeps_them_and_nothing_saves_over_it(
    stack: LocalStack,
    demo: str,
    browser: Browser,
    demo_key: str,
    http: aiohttp.ClientSession,
    username: str,
) -> None:
    path = "work/restore-over-edits.ipynb"
    page = await new_page(browser)
    try:
        await load_user(page, demo, username)
        frame = await open_notebook(page, path)
        first = f"kept_version = '{uuid.uuid4().hex[:8]}'"
        await type_in_first_cell(frame, page, first)
        first_id = await save_in_app(page, None)
        unsaved = f"unsaved_edit = '{uuid.uuid4().hex[:8]}'"
        await type_in_first_cell(frame, page, unsaved)
        # (the status line may not change: the kernel's start can leave it dirty already)
        await page.wait_for_function("() => window.demo.embed.dirty", timeout=EVENT_TIMEOUT_MS)

        await page.click(f'#versions li[data-version-id="{first_id}"] button.restore')
        await page.wait_for_function(
            "id => window.demo.restored === id", arg=first_id, timeout=EVENT_TIMEOUT_MS
        )
        # the iframe shows the restored version, not the edits it held
        cells = frame.locator(".jp-Notebook .jp-Cell .cm-content")
        await cells.filter(has_text=first).first.wait_for(timeout=EVENT_TIMEOUT_MS)
        assert await cells.filter(has_text=unsaved).count() == 0
        await screenshot(page, "05-restored-over-unsaved-edits")

        listed = await gateway_json(
            http, stack, demo_key, f"/v1/users/{username}/versions", path=path
        )
        stored = [
            await gateway_json(http, stack, demo_key, f"/v1/versions/{v['id']}")
            for v in listed["versions"]
        ]
        kept = [v for v in stored if unsaved in cell_sources(v["content"])]
        assert [v["origin"] for v in kept] == ["jupyter"]  # the edits, kept once
        (restore,) = [v for v in stored if v["origin"] == "restore"]
        assert restore["restored_from"] == first_id and restore["app"] == DEMO_APP_NAME

        # a later save from the iframe writes the restored content, not the old edits
        await save_in_app(page, first_id)
        on_disk = cell_sources(await server_file(http, stack, DEMO_APP_NAME, username, path))
        assert first in on_disk and unsaved not in on_disk
    finally:
        await page.context.close()


async def test_ctrl_s_inside_jupyter_makes_a_version(
    stack: LocalStack,
    demo: str,
    browser: Browser,
    demo_key: str,
    http: aiohttp.ClientSession,
    username: str,
) -> None:
    page = await new_page(browser)
    try:
        await load_user(page, demo, username)
        frame = await open_notebook(page, PATH)
        edit = f"saved_with_ctrl_s = '{uuid.uuid4().hex[:8]}'"
        await type_in_first_cell(frame, page, edit)
        await wait_for_status(page, "dirty")
        known = await page.eval_on_selector_all(
            "#versions li[data-version-id]", "items => items.map(li => li.dataset.versionId)"
        )
        await page.keyboard.press("Control+s")
        # The bridge reports the save made inside Jupyter ...
        await page.locator("#log li", has_text="saved inside Jupyter").wait_for(
            timeout=EVENT_TIMEOUT_MS
        )
        # ... and the hub service's notification makes a version that streams in.
        stored = await _streamed_version_containing(page, http, stack, demo_key, known, edit)
        assert stored["origin"] == "jupyter"
        await screenshot(page, "04-ctrl-s-version")
    finally:
        await page.context.close()
