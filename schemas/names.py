"""Validation of the names apps send: JupyterHub usernames and notebook paths.

These rules are the contract between apps and the orchestrator: anything that passes
is safe to put into a Hub URL or a contents API path without further escaping tricks.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_USERNAME_RE = re.compile(USERNAME_PATTERN)
_FORBIDDEN_PATH_CHARS = re.compile(r"[\x00-\x1f\x7f\\:*?\"<>|]")
MAX_PATH_LENGTH = 255


def check_username(value: str) -> str:
    """Return ``value`` if it is a valid JupyterHub username, else raise ValueError.

    JupyterHub lower-cases names; we insist on the normalised form so that one user
    never has two spellings in our database.
    """
    if not _USERNAME_RE.fullmatch(value):
        raise ValueError(
            "must be 1-64 characters of lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def normalise_relative_path(value: str) -> str:
    """Normalise a relative POSIX path; raise ValueError if it could escape the home dir.

    Rejects absolute paths, ``..`` segments, hidden segments (starting with '.'),
    backslashes and control characters. ``a//b/./c`` becomes ``a/b/c``.
    """
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    if not value:
        raise ValueError("must not be empty")
    if value.startswith("/"):
        raise ValueError("must be relative, not absolute")
    if _FORBIDDEN_PATH_CHARS.search(value):
        raise ValueError('contains a forbidden character (control, backslash or :*?"<>|)')
    segments = [s for s in value.split("/") if s not in ("", ".")]
    if not segments:
        raise ValueError("must name a file or folder")
    if any(s == ".." for s in segments):
        raise ValueError("must not contain '..'")
    if any(s.startswith(".") for s in segments):
        raise ValueError("must not contain hidden segments starting with '.'")
    normalised = posixpath.join(*segments)
    if len(normalised) > MAX_PATH_LENGTH:
        raise ValueError(f"must be at most {MAX_PATH_LENGTH} characters")
    return normalised


def check_notebook_path(value: str) -> str:
    """Normalise a notebook path: a safe relative path ending in ``.ipynb``."""
    normalised = normalise_relative_path(value)
    if not normalised.endswith(".ipynb") or normalised == ".ipynb":
        raise ValueError("must end with '.ipynb'")
    return normalised


Username = Annotated[str, StringConstraints(max_length=64), AfterValidator(check_username)]
NotebookPath = Annotated[
    str, StringConstraints(max_length=MAX_PATH_LENGTH * 2), AfterValidator(check_notebook_path)
]
FolderPath = Annotated[
    str, StringConstraints(max_length=MAX_PATH_LENGTH * 2), AfterValidator(normalise_relative_path)
]
