"""The demo page shows how far an ``open`` is, live, in a real browser on the real stack.

The page learns it from ``command.progressed`` events on its event stream; the bar
only ever moves forward and is gone once the notebook is in the iframe.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.e2e.embedding_steps import (
    load_user,
    new_page,
    open_notebook,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# Records every state the progress bar passes through (a spawn can be quicker than any
# polling from outside the page): one entry per change, in order.
RECORD_PROGRESS = """() => {
    const box = document.querySelector('#open-progress');
    const bar = document.querySelector('#open-progress-bar');
    const message = document.querySelector('#open-progress-message');
    window.progressSeen = [];
    const sample = () => {
        const entry = {hidden: box.hidden, percent: Number(bar.dataset.percent),
                       message: message.textContent};
        const last = window.progressSeen.at(-1);
        if (!last || JSON.stringify(last) !== JSON.stringify(entry)) {
            window.progressSeen.push(entry);
        }
    };
    sample();
    new MutationObserver(sample).observe(box, {
        attributes: true, childList: true, characterData: true, subtree: true,
    });
}"""


async def _progress_seen(page: Page) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = await page.evaluate("window.progressSeen")
    return seen


async def test_open_shows_progress_until_ready(demo: str, browser: Browser, username: str) -> None:
    # ``username`` is a fresh name: the Hub has no server for it, the open spawns one.
    page = await new_page(browser)
    try:
        await load_user(page, demo, username)
        await page.evaluate(RECORD_PROGRESS)
        try:
            await open_notebook(page, "work/progress.ipynb")
        except PlaywrightTimeout:
            await screenshot(page, "failed-open-with-progress")
            raise AssertionError(
                f"the open never finished; bar states: {await _progress_seen(page)}"
            ) from None
        seen = await _progress_seen(page)
        hidden_when_ready = await page.evaluate("document.querySelector('#open-progress').hidden")
        activity = await page.inner_text("#log")
    finally:
        await page.context.close()

    detail = f"bar states: {json.dumps(seen)}\nactivity:\n{activity}"
    assert any(not s["hidden"] for s in seen), f"the bar never showed; {detail}"
    shown = [s["percent"] for s in seen if not s["hidden"] and s["percent"] > 0]
    assert shown == sorted(shown), f"the bar moved backwards; {detail}"
    assert len(set(shown)) >= 2, f"the bar showed fewer than two progress values; {detail}"
    assert hidden_when_ready, f"the bar still shows with the notebook ready; {detail}"
