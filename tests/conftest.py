"""Fixtures shared by integration and end-to-end tests: the REAL stack, started once.

The stack (private RabbitMQ, JupyterHub with real single-user servers, gateway,
consumers) is started through the same module ``make run`` uses, on free loopback
ports under a temporary directory, and stopped (every PID) at the end of the session.
"""

from __future__ import annotations

import signal
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devstack.ports import hold_port
from devstack.stack import LocalStack, StackOptions

CHROMIUM = "/usr/bin/chromium"
TEST_APP = "tests"  # the app of the ``app_key`` fixture: its workspaces hold the test users
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C stops the run, stacks torn down, even when started in the background.

    A shell without job control starts a background command (``make test``'s second
    lane) with SIGINT ignored, and Python then never raises KeyboardInterrupt: the lane
    ran on after the first was stopped.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--lane``: CI runs the tests in two processes side by side (Makefile ``pytest``)."""
    parser.addoption(
        "--lane",
        choices=("all", "shared", "own"),
        default="all",
        help="shared: the tests on the session's shared stack, the end-to-end and the unit "
        "tests; own: the others (integration tests that start their own stacks)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests of the chosen ``--lane``; deselect the rest."""
    lane = config.getoption("--lane")
    if lane == "all":
        return
    kept = [item for item in items if _in_shared_lane(item) == (lane == "shared")]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


# Modules with stacks of their own that run in the shared lane all the same, to balance
# the two lanes (a clean-clone run: 22.4 min for the shared lane, 28.3 min for the
# other, whose three RabbitMQ-cluster scenarios alone took 7.4 min; these took 3.1 min)
BALANCING_MODULES = frozenset({"test_durability.py"})


def _in_shared_lane(item: pytest.Item) -> bool:
    path = Path(item.path)
    return (
        uses_shared_stack(item)
        or path.parent.name in ("e2e", "unit")
        or path.name in BALANCING_MODULES
    )


def uses_shared_stack(item: pytest.Item) -> bool:
    """Whether the test needs this file's session ``stack`` (a module's own ``stack``
    fixture of that name does not count)."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get("stack", ()) if info is not None else ()
    if not definitions:
        return False
    used = definitions[-1].func  # the most specific definition is the one used
    return Path(used.__code__.co_filename).resolve() == Path(__file__).resolve()


@pytest.fixture(scope="session")
def demo_socket() -> Iterator[socket.socket]:
    """The demo app's listening socket, held from before the stack starts (its origin is
    the stack's one allowed app origin, so its port cannot be taken meanwhile)."""
    held = hold_port()
    try:
        yield held
    finally:
        held.close()


@pytest.fixture(scope="session")
def demo_port(demo_socket: socket.socket) -> int:
    """The port of the demo app."""
    port: int = demo_socket.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, demo_port: int) -> Iterator[LocalStack]:
    """The shared stack: two consumers, hub service, four partitions."""
    state: Path = tmp_path_factory.mktemp("stack")
    options = StackOptions(
        consumers=2,
        hub_service=True,
        app_origins=[f"http://127.0.0.1:{demo_port}"],
        # the culler looks often; apps other than the culling tests' keep the default
        # policy (an hour idle), longer than the whole session
        extra_env={"ORCH_CULL_INTERVAL_SECONDS": "4"},
    )
    local = LocalStack(state, options)
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def app_key(stack: LocalStack) -> str:
    """An API key of an unrestricted app named 'tests'."""
    return stack.issue_app_key(TEST_APP)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client session."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


@pytest.fixture
def username() -> str:
    """A fresh, valid JupyterHub username."""
    return f"u{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def demo(stack: LocalStack, demo_socket: socket.socket, demo_port: int) -> Iterator[str]:
    """The demo host app running against the shared stack; yields its URL."""
    from devstack.demo.launcher import demo_origin, start_demo

    process = start_demo(stack, demo_socket)
    try:
        yield demo_origin(demo_port)
    finally:
        process.stop()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
