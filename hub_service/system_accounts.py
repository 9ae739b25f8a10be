"""One unprivileged system account per workspace, for JupyterHub's LocalProcessSpawner.

The spawner runs each single-user server (and its kernels) as the system account
named like the Hub user; this creates that account on first use: its own group, a
home folder of mode 0700 under ``homes_root``, no login shell. Run by the Hub (root)
before each spawn.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

USERADD = "useradd"
NO_LOGIN_SHELL = "/usr/sbin/nologin"
ACCOUNT_COMMENT = "notebook workspace"
_NAME_IN_USE = 9  # useradd's exit status when another spawn created it first


def ensure_account(name: str, homes_root: Path) -> pwd.struct_passwd:
    """The account ``name``, created with a private home under ``homes_root`` if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    home = homes_root / name
    done = subprocess.run(
        [
            USERADD,
            "--home-dir",
            str(home),
            "--create-home",
            "--user-group",
            "--shell",
            NO_LOGIN_SHELL,
            "--comment",
            ACCOUNT_COMMENT,
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, _NAME_IN_USE):
        raise RuntimeError(f"useradd {name} failed ({done.returncode}): {done.stderr.strip()}")
    home.chmod(0o700)
    return pwd.getpwnam(name)


def accounts_pre_spawn_hook(homes_root: str, subdir: str | None = None) -> Callable[[Any], None]:
    """A ``Spawner.pre_spawn_hook`` that makes sure the spawning user's account exists
    (and ``subdir`` of its home, owned by it, 0700: where a Hub that shares the machine's
    accounts with another keeps its servers' files)."""
    root = Path(homes_root)

    def create_account(spawner: Any) -> None:
        account = ensure_account(spawner.user.name, root)
        if subdir:
            folder = Path(account.pw_dir) / subdir
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chown(folder, account.pw_uid, account.pw_gid)

    return create_account


def accounts_with_home_under(homes_root: Path) -> list[str]:
    """Names of the accounts whose home lies under ``homes_root`` (those it created)."""
    root = str(homes_root.resolve()) + "/"
    return [entry.pw_name for entry in pwd.getpwall() if entry.pw_dir.startswith(root)]
