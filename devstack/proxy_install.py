"""Install configurable-http-proxy (JupyterHub's proxy) from npm into a project-local folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

DEFAULT_PROXY_PREFIX = Path(__file__).resolve().parents[2] / ".cache" / "chp"
PROXY_PACKAGE = "configurable-http-proxy@^5"


def proxy_bin(prefix: Path) -> Path:
    """Where the ``configurable-http-proxy`` executable lives under ``prefix``."""
    return prefix / "node_modules" / ".bin" / "configurable-http-proxy"


def install_proxy(prefix: Path = DEFAULT_PROXY_PREFIX) -> Path:
    """Return the proxy executable under ``prefix``, running ``npm install`` first if missing.

    Raises ``RuntimeError`` with npm's output if the install fails.
    """
    executable = proxy_bin(prefix)
    if executable.exists():
        return executable
    prefix.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), PROXY_PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not executable.exists():
        raise RuntimeError(
            f"npm install {PROXY_PACKAGE} into {prefix} failed (status {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return executable
