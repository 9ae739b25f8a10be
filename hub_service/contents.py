"""A contents manager for single-user servers whose saves are atomic for readers.

jupyter_server's "atomic" writing copies the old file aside, truncates the file and
writes the new content in place (in a worker thread for the async managers). A read
that lands in that window sees a partial file, fails to parse it and *restores the
copy over the file*; the save then finishes into the moved-away inode and is lost
(jupyter-server/jupyter_server#1416). The orchestrator reads a notebook right after
every save (the save extension's notification) and whenever a ``save`` command runs,
so that window is hit under ordinary use.

:class:`AtomicReplaceFileManager` writes every file to a hidden temporary file in the
same folder, syncs it and renames it over the target (``os.replace``): a reader sees
the old content or the new, never a mix, and a failed write leaves the old file and
no temporary behind. The file's permission bits are kept. As with any rename-based
write, the file gets a new inode (tools that follow inodes, some network file systems
and sync clients, see a new file); set ``use_atomic_writing = False`` to opt out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import IO, Any

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

TEMP_PREFIX = ".~orch-"


@contextlib.contextmanager
def replace_atomically(
    path: str, text: bool = True, encoding: str = "utf-8", log: Any = None, **kwargs: Any
) -> Iterator[IO[Any]]:
    """Yield a file to write; on success it replaces ``path`` in one rename.

    Same signature as ``jupyter_server.services.contents.fileio.atomic_writing``.
    A symlink at ``path`` is followed (its target is replaced, the link kept).
    """
    del log  # accepted for signature compatibility
    if os.path.islink(path):
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    folder, name = os.path.split(path)
    temp = os.path.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}")
    # 0o666 minus the umask, as a plain open() of a new file would get
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if text:
            kwargs.setdefault("newline", "\n")
            handle: IO[Any] = os.fdopen(descriptor, "w", encoding=encoding, **kwargs)
        else:
            handle = os.fdopen(descriptor, "wb", **kwargs)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if os.path.isfile(path):
            shutil.copymode(path, temp)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


class AtomicReplaceFileManager(AsyncLargeFileManager):
    """JupyterLab's default file manager, with saves that readers never see half-done."""

    @contextlib.contextmanager
    def atomic_writing(self, os_path: str, *args: Any, **kwargs: Any) -> Iterator[IO[Any]]:
        """Replace ``os_path`` atomically, or write in place if ``use_atomic_writing`` is off."""
        if not self.use_atomic_writing:
            with super().atomic_writing(os_path, *args, **kwargs) as handle:
                yield handle
            return
        with self.perm_to_403(os_path), replace_atomically(os_path, *args, **kwargs) as handle:
            yield handle
