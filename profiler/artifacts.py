"""Artifacts through the cache: export ahead in one grouped call, then load one at a time.

Every part of the profiler that measures (a LUT file, the device agent, whole
networks, a validation) reaches its models this way:

:func:`prefetch_artifacts`
    exports what the cache lacks in grouped, parallel exporter calls
    (:func:`profiler.export.export_many`), much faster than one by one; a
    stand-in cache (anything with ``get(target, fmt)``) exports nothing. A
    failure here is not final: :func:`load_artifact` then exports the item alone and
    its error names the item at fault.
:func:`load_artifact`
    the artifact of an entry or a :class:`~profiler.export.Target` from the
    cache (exported now when missing), loaded into a runtime with its input bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from searchspace import Entry

from .export import ArtifactCache, Target, entry_target, export_many
from .runtimes import Loaded, Runtime

__all__ = ["cache_or_default", "load_artifact", "prefetch_artifacts", "target_of"]


def target_of(item: Entry | Target) -> Target:
    """The export target of an entry (a target stays as it is)."""
    return entry_target(item) if isinstance(item, Entry) else item


def cache_or_default(cache: Any = None) -> Any:
    """``cache``, or the user's :class:`~profiler.export.ArtifactCache` when None."""
    return cache if cache is not None else ArtifactCache()


def prefetch_artifacts(
    cache: Any,
    items: Sequence[Entry | Target],
    fmt: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Export the ``items`` the cache lacks as ``fmt``, grouped and in parallel; a failure is left to the load.

    ``on_progress(finished, total)`` is called per finished artifact (:func:`~profiler.export.export_many`).
    """
    if not items or not isinstance(cache, ArtifactCache):  # a stand-in cache exports nothing
        return
    with contextlib.suppress(Exception):  # each item's own export names what fails, when it is loaded
        export_many(cache, [(target_of(item), fmt) for item in items], on_progress=on_progress)


def load_artifact(cache: Any, item: Entry | Target, runtime: Runtime) -> Loaded:
    """``item``'s artifact in ``runtime``'s format (exported now when the cache lacks it), loaded by ``runtime``."""
    artifact = cache.get(target_of(item), runtime.format)
    return runtime.load(artifact.path, artifact.input_shape)
