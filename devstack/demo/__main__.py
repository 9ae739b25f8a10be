"""``python -m devstack.demo``: the demo host app (``ORCH_DEMO_*`` settings) until a signal."""

from __future__ import annotations

from devstack.demo.app import serve_demo
from devstack.demo.settings import DemoSettings
from runtime.logs import configure_logging
from runtime.runner import run_until_signalled


def main() -> None:
    """Build the settings, configure logging, serve until SIGINT/SIGTERM."""
    settings = DemoSettings()
    configure_logging("demo", json=settings.log_json)
    run_until_signalled(lambda stop: serve_demo(settings, stop))


if __name__ == "__main__":
    main()
