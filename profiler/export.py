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

import contextlib
import hashlib
import io
import json
import logging
import multiprocessing
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from hwlut.paths import hwlut_home
from searchspace import Architecture, Entry, SpaceSpec

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
BUILD_REVISION = 2
ONNX_OPTIMIZE = False  # onnxruntime optimises the graph itself when it loads it


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


class ExportError(RuntimeError):
    """An exporter failed; the message carries the end of what it printed."""


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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress chatter (Python and native) and deprecation noise.

    What they printed is kept and raised with the error when an export fails.
    """
    buf = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as native, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = [os.dup(1), os.dup(2)]
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            for fd in (1, 2):
                os.dup2(native.fileno(), fd)
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                yield
        except Exception as exc:
            native.seek(0)
            tail = (buf.getvalue() + native.read().decode(errors="replace"))[-4000:]
            raise ExportError(f"export failed: {exc}\n--- exporter output ---\n{tail}") from exc
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            logging.disable(previous)


def _export_onnx(module: Any, example: Any, path: Path) -> dict[str, Any]:
    with _quiet():
        import torch

        program = torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            optimize=ONNX_OPTIMIZE,
            verbose=False,
        )
    shape = list(example.shape)
    opset = next((o.version for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "layout": "NCHW" if len(shape) == 4 else "NC", "runtime_input_shape": shape}


def _export_tflite(module: Any, example: Any, path: Path) -> dict[str, Any]:
    with _quiet():
        import litert_torch

    spatial = example.dim() == 4
    outputs_spatial = module(example).dim() == 4
    wrapped = litert_torch.to_channel_last_io(
        module, args=[0] if spatial else [], outputs=[0] if outputs_spatial else []
    ).eval()
    sample = example.permute(0, 2, 3, 1).contiguous() if spatial else example
    with _quiet():
        litert_torch.convert(wrapped, (sample,)).export(str(path))
    shape = list(sample.shape)
    return {"layout": "NHWC" if spatial else "NC", "runtime_input_shape": shape}


_EXPORTERS = {"onnx": _export_onnx, "tflite": _export_tflite}


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
        if fmt not in _EXPORTERS:
            raise ValueError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        found = self.lookup(target, fmt, batch, seed)
        return found if found is not None else self._build(target, fmt, batch, seed)

    def _build(self, target: Target, fmt: str, batch: int, seed: int) -> Artifact:
        import torch

        address = self.address(target, fmt, batch, seed)
        path, sidecar = self._paths(address, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        module = target.build(seed)
        example = torch.randn(target.input_shape(batch), generator=torch.Generator().manual_seed(seed))
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp-") as tmp:
            tmp_path = Path(tmp) / path.name
            extra = _EXPORTERS[fmt](module, example, tmp_path)
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
            os.replace(tmp_path, path)  # the artifact first, then the sidecar that vouches for it
        tmp_sidecar = sidecar.with_suffix(".json.tmp")
        tmp_sidecar.write_text(json.dumps(meta, indent=1))
        os.replace(tmp_sidecar, sidecar)
        return Artifact(path, fmt, target.label, digest, meta)


def _worker_init() -> None:
    """Pay the exporters' import cost once per worker; one torch thread per worker."""
    with _quiet():
        import litert_torch  # noqa: F401
        import onnxscript  # noqa: F401
        import torch

        torch.set_num_threads(1)


def _worker_export(root: str, target: Target, fmt: str, batch: int, seed: int) -> Artifact:
    return ArtifactCache(Path(root)).get(target, fmt, batch, seed)


def export_many(
    cache: ArtifactCache,
    jobs: Sequence[tuple[Target, str]],
    *,
    workers: int | None = None,
    batch: int = 1,
    seed: int = 0,
    on_done: Callable[[Artifact], None] | None = None,
) -> list[Artifact]:
    """Artifacts for many ``(target, format)`` pairs, exporting what the cache lacks in parallel.

    Cached artifacts are checked here without importing torch. The rest are
    exported by ``workers`` processes (default: one per CPU), each paying the
    exporters' import cost once; TFLite conversions, the slowest, go first so
    the workers finish together. Returns the artifacts in the order of ``jobs``.
    """
    results: dict[int, Artifact] = {}
    todo: list[int] = []
    for i, (target, fmt) in enumerate(jobs):
        if fmt not in _EXPORTERS:
            raise ValueError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        found = cache.lookup(target, fmt, batch, seed)
        if found is None:
            todo.append(i)
        else:
            results[i] = found
            if on_done is not None:
                on_done(found)
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        for i in todo:
            results[i] = cache.get(jobs[i][0], jobs[i][1], batch, seed)
            if on_done is not None:
                on_done(results[i])
    elif todo:
        todo.sort(key=lambda i: (jobs[i][1] != "tflite", jobs[i][0].entry is not None))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
            futures = {
                pool.submit(_worker_export, str(cache.root), jobs[i][0], jobs[i][1], batch, seed): i for i in todo
            }
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_done is not None:
                    on_done(results[futures[future]])
    return [results[i] for i in range(len(jobs))]
