"""Files that hold secrets or data are readable by their owner only (no group, no others)."""

from __future__ import annotations

import stat
from pathlib import Path

from devstack.stack import LocalStack


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_secrets_and_databases_are_private(stack: LocalStack, app_key: str) -> None:
    state = stack.state_dir
    secrets_inside = {
        stack.hub.config_path: [stack.service_token, stack.launch_secret],
        state / "rabbitmq" / "rabbitmq.conf": [stack.broker.password],
    }
    for path, secrets in secrets_inside.items():
        text = path.read_text()
        assert all(secret in text for secret in secrets), path  # the right file is checked
        assert _mode(path) == 0o600, path
    for folder in (state, stack.hub.config.hub_dir, state / "rabbitmq"):
        assert _mode(folder) == 0o700, folder
    databases = [p for p in state.iterdir() if p.name.startswith("orchestrator.db")]
    assert databases  # the key fixture wrote to it
    for path in [*databases, stack.hub.config.db_path]:
        assert _mode(path) & 0o077 == 0, (path, oct(_mode(path)))
