"""The system accounts the local stack's single-user servers run as, and their cleanup.

The Hub creates one account per workspace on first spawn
(``hub_service.system_accounts``); the stack that started the Hub removes them, by the
homes it gave them, when it stops (accounts of other stacks are left alone).
"""

from __future__ import annotations

import shutil
import subprocess

from devstack.hub_config import WorkspaceAccounts
from devstack.process import REPOSITORY_ROOT
from hub_service.system_accounts import accounts_with_home_under

# Built by `make install` from the system Python: an unprivileged account can execute
# it (the project's own venv lives under /root, mode 0700, on these machines).
SINGLEUSER_VENV = REPOSITORY_ROOT / ".cache" / "singleuser-venv"


def remove_accounts(accounts: WorkspaceAccounts) -> list[str]:
    """Delete every account whose home is under ``accounts``' homes, then its public
    folder; returns the names removed. Idempotent."""
    removed: list[str] = []
    if accounts.homes_root.exists():
        for name in accounts_with_home_under(accounts.homes_root):
            subprocess.run(["userdel", "--force", name], capture_output=True, check=False)
            removed.append(name)
    shutil.rmtree(accounts.public_dir, ignore_errors=True)
    return removed
