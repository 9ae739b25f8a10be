"""Build the embed-bridge JupyterLab extension from npm and PyPI packages only.

``python -m hub_service.labextension.build`` (or :func:`build_labextension`) copies the
sources into ``.cache/labextension/``, runs ``npm install`` there when ``package.json``
changed, then ``jupyter-builder build`` (from the venv, on PATH). The result is
``.cache/labextension/labextensions/orchestrator-embed-bridge``; a stamp with the hash of
the sources makes a repeated call a no-op. A file lock lets parallel test sessions share
the one build.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
CACHE_DIR = SOURCE_DIR.parents[1] / ".cache" / "labextension"
EXTENSION_NAME = "orchestrator-embed-bridge"
LABEXTENSIONS_DIR = CACHE_DIR / "labextensions"
_STAMP = ".source-sha256"
_NPM_STAMP = ".package-json-sha256"
_TIMEOUT_SECONDS = 600


class LabextensionBuildError(RuntimeError):
    """npm or jupyter-builder failed; the message carries their output."""


def _sources() -> list[Path]:
    return [SOURCE_DIR / "package.json", *sorted((SOURCE_DIR / "src").glob("*.js"))]


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(SOURCE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        argv,
        cwd=CACHE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise LabextensionBuildError(
            f"{' '.join(argv)} failed (status {done.returncode}) in {CACHE_DIR}:\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )


def _build_env() -> dict[str, str]:
    tmp = CACHE_DIR / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "TMPDIR": str(tmp),
    }


def build_labextension(*, force: bool = False) -> Path:
    """Build the extension if its sources changed; return the ``labextensions`` folder.

    Raises LabextensionBuildError (with the tools' output) when npm or the builder fails.
    """
    output = LABEXTENSIONS_DIR / EXTENSION_NAME
    source_hash = _digest(_sources())
    if not force and _read(output / _STAMP) == source_hash:
        return LABEXTENSIONS_DIR
    with _locked(CACHE_DIR.parent / "labextension.lock"):
        if not force and _read(output / _STAMP) == source_hash:
            return LABEXTENSIONS_DIR
        env = _build_env()
        shutil.copy2(SOURCE_DIR / "package.json", CACHE_DIR / "package.json")
        shutil.rmtree(CACHE_DIR / "src", ignore_errors=True)
        shutil.copytree(SOURCE_DIR / "src", CACHE_DIR / "src")
        package_hash = _digest([SOURCE_DIR / "package.json"])
        if (
            _read(CACHE_DIR / _NPM_STAMP) != package_hash
            or not (CACHE_DIR / "node_modules").is_dir()
        ):
            _run(["npm", "install", "--no-audit", "--no-fund", "--no-package-lock"], env)
            (CACHE_DIR / _NPM_STAMP).write_text(package_hash)
        shutil.rmtree(output, ignore_errors=True)
        _run([str(Path(sys.executable).parent / "jupyter-builder"), "build", "."], env)
        if not (output / "package.json").is_file():
            raise LabextensionBuildError(f"the build left no {output / 'package.json'}")
        (output / _STAMP).write_text(source_hash)
    return LABEXTENSIONS_DIR


def main(argv: list[str] | None = None) -> int:
    """Command line: build (``--force`` to rebuild) and print the labextensions folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    print(build_labextension(force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
