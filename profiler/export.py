"""Export entries and whole networks to ONNX and TFLite, through a content-addressed cache.

ONNX uses torch's default (dynamo) exporter with ``external_data=False`` (one
file). TFLite uses litert-torch with channel-last inputs and outputs, so a
runtime times no layout transposes. Weights and BN statistics are random but
seeded (:func:`searchspace.modules.randomize_`).

The cache lives under ``$HWLUT_HOME/artifacts``; an artifact's address is a
hash of what it was built from (the entry or network, format, batch size,
seed, and the versions of torch and the exporter). Each artifact has a
``.json`` sidecar written after it, holding the artifact's SHA-256: a file
whose sidecar is missing or whose bytes do not match is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from searchspace import Architecture, Entry, SpaceSpec
from searchspace.paths import hwlut_home

from .exporters import EXPORTERS, ONNX_OPTIMIZE, ExportError, quiet
from .workers import exit_when_terminated, run_in_workers, tmp_prefix, worker_setup

__all__ = [
    "FORMATS",
    "Artifact",
    "ArtifactCache",
    "ExportError",
    "Target",
    "entry_target",
    "export_many",
    "exporter_versions",
    "network_target",
]

FORMATS = ("onnx", "tflite")
SUFFIX = {"onnx": ".onnx", "tflite": ".tflite"}
#: Bumped whenever the builders or export settings change what an artifact holds.
BUILD_REVISION = 3


@cache
def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def exporter_versions(fmt: str) -> dict[str, str]:
    """Versions of the packages that decide what an artifact of ``fmt`` holds."""
    if fmt == "onnx":
        names = ("torch", "onnx", "onnxscript")
    elif fmt == "tflite":
        names = ("torch", "litert-torch", "litert-converter")
    else:
        raise ValueError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return {name: _version(name) for name in names}


@dataclass(frozen=True)
class Target:
    """What to export: one entry, or a whole network of a space."""

    label: str
    identity: dict[str, Any]
    entry: Entry | None = None
    space: SpaceSpec | None = None
    arch: Architecture | None = None

    def input_shape(self, batch: int) -> tuple[int, ...]:
        """The NCHW (or ``(N, C)``) input shape."""
        if self.entry is not None:
            return self.entry.input_shape(batch)
        assert self.space is not None
        r = self.space.resolution
        return (batch, self.space.in_channels, r, r)

    def build(self, seed: int) -> Any:
        """The torch module (imports torch)."""
        from searchspace.modules import build_entry, build_network

        if self.entry is not None:
            return build_entry(self.entry, seed=seed)
        assert self.space is not None and self.arch is not None
        return build_network(self.space, self.arch, seed=seed)


def entry_target(entry: Entry) -> Target:
    """An export target for one LUT entry."""
    return Target(entry.key, {"entry": entry.key}, entry=entry)


def network_target(space: SpaceSpec, arch: Architecture | str) -> Target:
    """An export target for a whole network of ``space``."""
    if isinstance(arch, str):
        arch = space.decode(arch)
    text = arch.encode()
    label = "net-" + hashlib.sha256(f"{space.spec_hash}:{text}".encode()).hexdigest()[:16]
    return Target(label, {"space": space.spec_hash, "arch": text}, space=space, arch=arch)


@dataclass(frozen=True)
class Artifact:
    """One exported file and what it was built from."""

    path: Path
    format: str
    target: str
    sha256: str
    meta: dict[str, Any]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The input shape in the artifact's own layout (NHWC for a spatial TFLite model)."""
        return tuple(self.meta["runtime_input_shape"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactCache:
    """Exported artifacts under ``root``, addressed by what they were built from."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else hwlut_home() / "artifacts"

    def address(self, target: Target, fmt: str, batch: int = 1, seed: int = 0) -> str:
        """The content address (hex) of ``target`` exported as ``fmt``."""
        identity = {
            "target": target.identity,
            "format": fmt,
            "batch": batch,
            "seed": seed,
            "revision": BUILD_REVISION,
            "onnx_optimize": ONNX_OPTIMIZE if fmt == "onnx" else None,
            "versions": exporter_versions(fmt),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def _paths(self, address: str, fmt: str) -> tuple[Path, Path]:
        folder = self.root / fmt / address[:2]
        return folder / f"{address}{SUFFIX[fmt]}", folder / f"{address}.json"

    def lookup(self, target: Target, fmt: str, batch: int = 1, seed: int = 0) -> Artifact | None:
        """The cached artifact, or None when absent, partial or corrupted."""
        path, sidecar = self._paths(self.address(target, fmt, batch, seed), fmt)
        try:
            meta = json.loads(sidecar.read_text())
            if path.stat().st_size != meta["size"] or _sha256(path) != meta["sha256"]:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return Artifact(path, fmt, target.label, meta["sha256"], meta)

    def get(self, target: Target, fmt: str, batch: int = 1, seed: int = 0) -> Artifact:
        """The artifact of ``target`` as ``fmt``: from the cache, or exported now."""
        if fmt not in EXPORTERS:
            raise ValueError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        found = self.lookup(target, fmt, batch, seed)
        return found if found is not None else self._build(target, fmt, batch, seed)

    def _build(self, target: Target, fmt: str, batch: int, seed: int) -> Artifact:
        return self.build_group([target], fmt, batch, seed)[0]

    def build_group(self, targets: Sequence[Target], fmt: str, batch: int = 1, seed: int = 0) -> list[Artifact]:
        """Export ``targets`` as ``fmt`` in one exporter call and store each (no cache lookup).

        A group whose combined export fails is exported one target at a time,
        so one bad target names itself in the error.
        """
        import torch

        modules = [t.build(seed) for t in targets]
        examples = [torch.randn(t.input_shape(batch), generator=torch.Generator().manual_seed(seed)) for t in targets]
        folder = self.root / fmt
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=tmp_prefix()) as tmp:
            tmp_paths = [Path(tmp) / f"{k}{SUFFIX[fmt]}" for k in range(len(targets))]
            try:
                extras = EXPORTERS[fmt](modules, examples, tmp_paths)
            except ExportError:
                if len(targets) == 1:
                    raise
                return [self.build_group([t], fmt, batch, seed)[0] for t in targets]
            return [
                self._store(target, fmt, batch, seed, tmp_path, extra)
                for target, tmp_path, extra in zip(targets, tmp_paths, extras, strict=True)
            ]

    def _store(self, target: Target, fmt: str, batch: int, seed: int, tmp_path: Path, extra: dict) -> Artifact:
        """Move a freshly exported file into the cache: the artifact first, then the sidecar vouching for it."""
        path, sidecar = self._paths(self.address(target, fmt, batch, seed), fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = _sha256(tmp_path)
        meta = {
            "target": target.label,
            "identity": target.identity,
            "format": fmt,
            "batch": batch,
            "seed": seed,
            "input_shape": list(target.input_shape(batch)),
            "versions": exporter_versions(fmt),
            "sha256": digest,
            "size": tmp_path.stat().st_size,
            **extra,
        }
        os.replace(tmp_path, path)
        tmp_sidecar = sidecar.with_suffix(".json.tmp")
        tmp_sidecar.write_text(json.dumps(meta, indent=1))
        os.replace(tmp_sidecar, sidecar)
        return Artifact(path, fmt, target.label, digest, meta)


def _worker_init(parent: int, formats: tuple[str, ...]) -> None:
    """Pay the import cost of the exporters of ``formats`` once per worker; one torch thread; end with ``parent``."""
    worker_setup(parent)
    with quiet():
        if "tflite" in formats:
            import litert_torch  # noqa: F401
        if "onnx" in formats:
            import onnxscript  # noqa: F401
        import torch

        torch.set_num_threads(1)


def _worker_export(root: str, targets: list[Target], fmt: str, batch: int, seed: int) -> list[Artifact]:
    return exit_when_terminated(ArtifactCache(Path(root)).build_group, targets, fmt, batch, seed)


#: Entries per exporter call: the fixed cost per call is shared by this many.
GROUP_SIZE = 16
#: Whole networks per exporter call. A lone FBNet-32 network cost 10.8 s in litert-torch and
#: 2.7 s in the ONNX exporter (medians, 2-core VM); four in one call 7.5 s and 2.5 s each.
NETWORK_GROUP_SIZE = 5


def _groups(todo: list[int], jobs: Sequence[tuple[Target, str]], workers: int) -> list[list[int]]:
    """Chunks of same-format, same-kind jobs (entries, whole networks), enough of them to keep every worker busy.

    Entries go up to :data:`GROUP_SIZE` per chunk, networks up to :data:`NETWORK_GROUP_SIZE`;
    either kind is cut into at least two chunks per worker where it has that many jobs
    (networks: at least one per worker), so that no worker is left with the tail.
    """
    chunks: list[list[int]] = []
    for fmt in FORMATS:
        for is_entry, most, per_worker in ((False, NETWORK_GROUP_SIZE, 1), (True, GROUP_SIZE, 2)):
            kind = [i for i in todo if jobs[i][1] == fmt and (jobs[i][0].entry is not None) == is_entry]
            if kind:
                size = max(1, min(most, -(-len(kind) // (per_worker * workers))))
                chunks += [kind[k : k + size] for k in range(0, len(kind), size)]
    # The costliest first, so that the workers finish together: TFLite (the slowest per item),
    # networks (each costs as much as a chunk of entries), larger chunks.
    chunks.sort(key=lambda c: (jobs[c[0]][1] != "tflite", jobs[c[0]][0].entry is not None, -len(c)))
    return chunks


def export_many(
    cache: ArtifactCache,
    jobs: Sequence[tuple[Target, str]],
    *,
    workers: int | None = None,
    batch: int = 1,
    seed: int = 0,
    on_done: Callable[[Artifact], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Artifact]:
    """Artifacts for many ``(target, format)`` pairs, exporting what the cache lacks.

    Cached artifacts are checked here without importing torch. The rest are
    exported in groups of up to :data:`GROUP_SIZE` entries or
    :data:`NETWORK_GROUP_SIZE` whole networks per exporter call, split per
    target afterwards (:meth:`ArtifactCache.build_group`; a split network is
    the model a lone export gives, bar names), by ``workers`` processes (default: one
    per CPU) that pay the exporters' import cost once each. Returns the
    artifacts in the order of ``jobs``.

    ``on_done(artifact)`` is called per artifact as it is ready, cached ones first;
    ``on_progress(finished, len(jobs))`` likewise, ``finished`` counting 1, 2, …
    An interruption (Ctrl-C, any error) stops the workers before it propagates
    (:mod:`profiler.workers`); the artifacts finished by then stay in the cache.
    """
    results: dict[int, Artifact] = {}
    todo: list[int] = []

    def done(artifact: Artifact) -> None:
        if on_done is not None:
            on_done(artifact)
        if on_progress is not None:
            on_progress(len(results), len(jobs))

    for i, (target, fmt) in enumerate(jobs):
        if fmt not in EXPORTERS:
            raise ValueError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        found = cache.lookup(target, fmt, batch, seed)
        if found is None:
            todo.append(i)
        else:
            results[i] = found
            done(found)
    todo = list(dict.fromkeys(todo))
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    chunks = _groups(todo, jobs, workers)

    def collect(chunk: list[int], artifacts: list[Artifact]) -> None:
        for i, artifact in zip(chunk, artifacts, strict=True):
            results[i] = artifact
            done(artifact)

    if workers == 1:
        for chunk in chunks:
            collect(chunk, cache.build_group([jobs[i][0] for i in chunk], jobs[chunk[0]][1], batch, seed))
    elif chunks:
        context = multiprocessing.get_context("spawn")
        formats = tuple(sorted({jobs[c[0]][1] for c in chunks}))

        def make_pool() -> ProcessPoolExecutor:
            initargs = (os.getpid(), formats)
            return ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=initargs)

        def submit(pool: ProcessPoolExecutor) -> dict[Future, list[int]]:
            return {
                pool.submit(_worker_export, str(cache.root), [jobs[i][0] for i in c], jobs[c[0]][1], batch, seed): c
                for c in chunks
            }

        def wait(futures: dict[Future, list[int]]) -> None:
            for future in as_completed(futures):
                collect(futures[future], future.result())

        run_in_workers(make_pool, submit, wait, [cache.root])
    return [results[i] for i in range(len(jobs))]
