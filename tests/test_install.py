"""The lock (requirements.lock) and pyproject.toml agree, and each extra installs on its own.

The dependency graph is read from the installed packages' metadata (the test
environment is installed from the lock), starting from pyproject.toml itself,
so an edit of pyproject.toml that the lock does not follow fails here even
before anything is reinstalled.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PROJECT = "hwlut"
#: What the lock covers (scripts/lock.sh): every extra.
LOCKED_EXTRAS = ("all", "test")
#: Packages a machine without torch must be able to run: the server and the device agent.
TORCHLESS = ("server", "runtime")
HEAVY = re.compile(r"^(torch|torchvision|torchaudio|nvidia-.*|triton)$")


def lock_pins() -> dict[NormalizedName, str]:
    """``{name: version}`` of the lock's ``name==version`` lines."""
    pins: dict[NormalizedName, str] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;\\]+)(\s*\\)?", line)
        assert match, f"requirements.lock: not a name==version line: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


@cache
def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def project_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """hwlut's own requirements for ``extras``, read from pyproject.toml (self-references expanded)."""
    project = _pyproject()
    optional = project.get("optional-dependencies", {})
    reqs = [Requirement(text) for text in project["dependencies"]]
    todo, done = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in done:
            continue
        done.add(extra)
        assert extra in optional, f"pyproject.toml: no extra named {extra!r}"
        for text in optional[extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == PROJECT:
                todo += sorted(req.extras)
            else:
                reqs.append(req)
    return reqs


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": extra}) for extra in extras | {""})


def resolved_set(extras: tuple[str, ...]) -> tuple[dict[NormalizedName, str], list[str]]:
    """Every distribution ``hwlut[extras]`` needs here, from installed metadata: ``({name: version}, missing)``."""
    found: dict[NormalizedName, str] = {}
    expanded: dict[NormalizedName, set[str]] = {}
    missing: list[str] = []
    todo = [(req, PROJECT) for req in project_requirements(extras) if _applies(req, set())]
    while todo:
        req, parent = todo.pop()
        name = canonicalize_name(req.name)
        wanted = set(req.extras)
        if name in expanded and wanted <= expanded[name]:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(f"{req} (wanted by {parent})")
            continue
        found[name] = dist.version
        expanded[name] = expanded.get(name, set()) | wanted
        for text in dist.requires or []:
            sub = Requirement(text)
            if _applies(sub, expanded[name]):
                todo.append((sub, name))
    return found, missing


def test_lock_is_requirements_form_without_index_or_host() -> None:
    text = LOCK.read_text()
    assert lock_pins(), "requirements.lock holds no pins"
    assert not re.search(r"(?m)^\s*(-i|--index-url|--extra-index-url|-f|--find-links)\b", text)
    assert "://" not in text, "requirements.lock names a URL"


def test_every_pyproject_requirement_is_locked_within_its_range() -> None:
    pins = lock_pins()
    problems = []
    for req in project_requirements(LOCKED_EXTRAS):
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req}: in pyproject.toml, not in requirements.lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req}: the lock pins {pins[name]}")
    assert not problems, "run `bash scripts/lock.sh`:\n" + "\n".join(problems)


def test_lock_equals_what_pyproject_needs() -> None:
    """Nothing locked that pyproject.toml no longer needs, nothing needed that is unlocked."""
    pins = lock_pins()
    needed, missing = resolved_set(LOCKED_EXTRAS)
    assert not missing, "needed but not installed (is it in the lock?): " + ", ".join(missing)
    assert sorted(set(needed) - set(pins)) == [], "needed but not in requirements.lock"
    assert sorted(set(pins) - set(needed)) == [], "in requirements.lock but needed by nothing in pyproject.toml"


def test_installed_versions_are_the_locked_ones() -> None:
    pins = lock_pins()
    needed, _ = resolved_set(LOCKED_EXTRAS)
    differ = {name: (version, pins[name]) for name, version in needed.items() if pins.get(name) != version}
    assert differ == {}, "installed (left) differs from the lock (right)"


@pytest.mark.parametrize("extra", TORCHLESS)
def test_server_and_agent_extras_need_no_torch(extra: str) -> None:
    needed, missing = resolved_set((extra,))
    assert not missing
    assert sorted(name for name in needed if HEAVY.match(name)) == []
    # and what the extra is for is in it
    assert {"server": "fastapi", "runtime": "onnxruntime"}[extra] in needed


def test_closure_walk_sees_torch_where_it_is() -> None:
    """The check above can fail: the export extra does pull torch."""
    needed, _ = resolved_set(("export",))
    assert "torch" in needed and "litert-torch" in needed


def test_install_commands_use_the_lock() -> None:
    readme = (ROOT / "README.md").read_text()
    first_section = readme.split("\n## ", 2)[1]
    assert "-c requirements.lock" in first_section
    assert "-c requirements.lock" in (ROOT / "scripts" / "test.sh").read_text()
