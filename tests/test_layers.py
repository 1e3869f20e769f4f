"""The import contract: packages import one way, as DESIGN.md draws them.

    searchspace  ◄── lut_store ◄── server
         ▲  ▲
         │  └───── lutclient ◄── profiler, searcher
         └──────────────────────── profiler, searcher
    hwlut (the CLI) may import every package.

Read from the source with :mod:`ast` (imports inside functions count too),
so a shortcut cannot come back unnoticed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: package -> the project packages it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "searchspace": set(),
    "lutclient": {"searchspace"},
    "lut_store": {"searchspace"},
    "server": {"lut_store", "searchspace"},
    "profiler": {"searchspace", "lutclient"},
    "searcher": {"searchspace", "lutclient"},
    "hwlut": {"searchspace", "lutclient", "lut_store", "server", "profiler", "searcher"},
}


def imported_packages(path: Path) -> dict[str, int]:
    """Project packages that ``path`` imports, with the first line of each."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in ALLOWED:
                found.setdefault(top, node.lineno)
    return found


def test_every_package_is_under_contract() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for target, line in imported_packages(path).items()
        if target != package and target not in ALLOWED[package]
    ]
    assert wrong == []


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from hwlut.cli import main\n    import server.main\n")
    assert imported_packages(bad) == {"hwlut": 2, "server": 3}


def test_the_server_never_imports_torch_or_the_cli() -> None:
    code = (
        "import sys, server.main, lut_store.crud; "
        "print(sorted(m for m in ('torch', 'hwlut', 'profiler', 'searcher', 'lutclient') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_no_import_cycle_inside_profiler() -> None:
    """No module of ``profiler`` imports itself back through others (imports inside functions count too).

    An import names a module when one is there (``from .runtimes import adb`` names
    ``profiler.runtimes.adb``), else the package or module it reads the name from.
    A package's ``__init__`` running before its submodules is not counted as an import.
    """
    root = ROOT / "profiler"
    modules = {
        ".".join(("profiler", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): path
        for path in root.rglob("*.py")
    }

    def imports(name: str, path: Path) -> set[str]:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                found |= {f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names}
        return found & set(modules)

    graph = {name: imports(name, path) - {name} for name, path in modules.items()}
    assert graph["profiler.runtimes"] >= {"profiler.runtimes.adb", "profiler.runtimes.base"}  # the check sees imports
    plugins = [n for n in graph if n.startswith("profiler.runtimes.") and n != "profiler.runtimes.base"]
    assert plugins and {p: graph[p] for p in plugins} == {p: {"profiler.runtimes.base"} for p in plugins}

    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
