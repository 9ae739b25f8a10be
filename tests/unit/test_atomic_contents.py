"""Saves through AtomicReplaceFileManager are atomic for readers (real jupyter_server managers)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from hub_service.contents import TEMP_PREFIX, AtomicReplaceFileManager


def _notebook(marker: str, cells: int = 1) -> dict[str, Any]:
    nb = nbformat.v4.new_notebook()
    body = "x = 1\n" * 200
    nb.cells = [nbformat.v4.new_code_cell(f"# {marker} {i}\n{body}") for i in range(cells)]
    return {"type": "notebook", "format": "json", "content": nb}


def _marker(model: dict[str, Any]) -> str:
    source: str = model["content"]["cells"][0]["source"]
    return source.split()[1]


@pytest.mark.parametrize(
    ("manager_class", "seen_mid_write"),
    [
        (AtomicReplaceFileManager, "old"),
        # why the class exists: jupyter_server's own writer exposes the partial file
        (AsyncLargeFileManager, "new, half"),
    ],
)
def test_what_a_reader_sees_while_a_write_is_under_way(
    tmp_path: Path, manager_class: type[AsyncLargeFileManager], seen_mid_write: str
) -> None:
    manager = manager_class(root_dir=str(tmp_path))
    target = tmp_path / "n.ipynb"
    target.write_text("old")
    with manager.atomic_writing(str(target), encoding="utf-8") as handle:
        handle.write("new, half")
        handle.flush()
        assert target.read_text() == seen_mid_write
    assert target.read_text() == "new, half"
    assert [p.name for p in tmp_path.iterdir()] == ["n.ipynb"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    manager = AtomicReplaceFileManager(root_dir=str(tmp_path))
    target = tmp_path / "n.ipynb"
    target.write_text("old")
    with pytest.raises(RuntimeError), manager.atomic_writing(str(target), encoding="utf-8") as f:
        f.write("partial")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_permission_bits_are_kept_and_new_files_follow_the_umask(tmp_path: Path) -> None:
    manager = AtomicReplaceFileManager(root_dir=str(tmp_path))
    kept = tmp_path / "kept.ipynb"
    kept.write_text("old")
    kept.chmod(0o640)
    with manager.atomic_writing(str(kept), encoding="utf-8") as handle:
        handle.write("new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640

    umask = os.umask(0o027)
    try:
        with manager.atomic_writing(str(tmp_path / "fresh.ipynb"), text=False) as handle:
            handle.write(b"new")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "fresh.ipynb").stat().st_mode) == 0o640


async def test_reads_during_saves_see_whole_notebooks_and_the_last_save_wins(
    tmp_path: Path,
) -> None:
    manager = AtomicReplaceFileManager(root_dir=str(tmp_path))
    await manager.save(_notebook("v0", cells=40), "n.ipynb")
    written = {"v0"}
    reads: list[str] = []
    saving = True

    async def reader() -> None:
        while saving:
            reads.append(_marker(await manager.get("n.ipynb")))

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    for i in range(1, 30):
        written.add(f"v{i}")
        await manager.save(_notebook(f"v{i}", cells=40), "n.ipynb")
    saving = False
    await asyncio.gather(*readers)

    assert reads and set(reads) <= written
    assert _marker(await manager.get("n.ipynb")) == "v29"
    assert not [name for name in os.listdir(tmp_path) if name.startswith((TEMP_PREFIX, ".~n"))]
