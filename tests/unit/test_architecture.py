"""The package layout holds: imports only go down the layers, and the wheel ships
the product alone (no dev stack, demo, fault proxy or test helper)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("schemas", "runtime", "consumers", "hub_service", "orchestrator")
# Lower number = lower layer. A module may import its own unit or anything lower;
# the three processes (gateway, consumers, hub service) never import each other.
LAYERS: dict[str, int] = {
    "schemas": 0,
    "runtime": 1,
    "consumers": 2,
    "hub_service": 2,
    "orchestrator.gateway": 2,
    "orchestrator.operator": 3,
    "orchestrator.cli": 4,
    "orchestrator.__main__": 5,
}


def unit_of(module: str) -> str:
    """The layer unit a dotted module name belongs to (longest matching prefix)."""
    matches = [u for u in LAYERS if module == u or module.startswith(u + ".")]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return max(matches, key=len)


def project_imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (module-level and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        found |= {n for n in names if n.split(".")[0] in (*SHIPPED, "devstack", "tests", "bench")}
    return found


def shipped_modules() -> list[tuple[str, Path]]:
    modules = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules.append((dotted.removesuffix(".__init__"), path))
    return modules


def test_shipped_code_imports_only_down_the_layers() -> None:
    wrong = []
    for module, path in shipped_modules():
        if module == "orchestrator" or ".migrations" in module:
            continue  # the package face; Alembic's scripts import what the DB layer holds
        here = unit_of(module)
        for imported in project_imports(path):
            top = imported.split(".")[0]
            if top not in SHIPPED:
                wrong.append(f"{module} imports {imported} (not shipped)")
                continue
            try:
                there = unit_of(imported)
            except AssertionError:
                continue  # "orchestrator" itself
            if there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} ({here}) imports {imported} ({there})")
    assert wrong == []


def test_dev_test_and_bench_code_never_import_each_other_upwards() -> None:
    wrong = []
    for path in sorted((ROOT / "devstack").rglob("*.py")):
        wrong += [
            f"{path}: {i}" for i in project_imports(path) if i.split(".")[0] in ("tests", "bench")
        ]
    for path in sorted((ROOT / "bench").rglob("*.py")):
        wrong += [f"{path}: {i}" for i in project_imports(path) if i.split(".")[0] == "tests"]
    assert wrong == []


@pytest.mark.slow
def test_the_wheel_holds_the_product_and_nothing_of_the_dev_stack(tmp_path: Path) -> None:
    source = tmp_path / "source"  # setuptools builds in the tree: build a copy of it
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".state", ".cache", "node_modules", "build", "*.egg-info"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == set(SHIPPED)
    assert not [n for n in names if any(w in n for w in ("demo", "fault_proxy", "reliability"))]
    assert "runtime/db/migrations/versions/r0001_initial_schema.py" in names
    assert "orchestrator/gateway/static/orchestrator-embed.js" in names
