"""One job made ready to measure, once per job: runtime, protocol, provenance, exports, overhead, sentinel.

:func:`prepare_job` checks the job's settings (:func:`runtime_for_job`) and
the checked provenance of its earlier uploads (:func:`earlier_mismatches`),
both *before* measuring; exports every artifact the job needs that the cache
lacks in one grouped parallel export; measures the runtime's per-invocation
overhead when the LUT has none yet; and loads the sentinel. The
:class:`JobState` it returns loads a claimed batch's entries and networks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from searchspace import Entry, SpaceSpec, parse_key

from ..artifacts import cache_or_default, load_artifact, prefetch_artifacts
from ..export import ArtifactCache, exporter_versions, network_target
from ..local import default_sentinel
from ..protocol import TRIVIAL_ENTRY, ProtocolConfig, measure_single
from ..runtimes import Loaded, Runtime, warm_runtime
from .config import (
    AgentConfig,
    AgentHooks,
    SettingsMismatch,
    earlier_mismatches,
    job_protocol,
    runtime_for_job,
    unmeasured_networks,
)

__all__ = ["JobState", "prepare_job"]


@dataclass
class JobState:
    """What serving one job needs, prepared once: runtime, protocol, provenance, space, the loaded sentinel."""

    runtime: Runtime
    config: ProtocolConfig
    provenance: dict[str, Any]
    cache: Any
    overhead_us: float | None = None
    sentinel: Loaded | None = None
    space: SpaceSpec | None = None

    def load(self, entry: Entry) -> Loaded:
        """Load an entry's artifact (exported now when the cache lacks it)."""
        return load_artifact(self.cache, entry, self.runtime)

    def network_label(self, arch: str) -> str:
        """The artifact label of a whole network of the job's space."""
        assert self.space is not None
        return network_target(self.space, arch).label

    def load_network(self, arch: str) -> Loaded:
        """Load a whole network of the job's space, exported as one artifact (now when the cache lacks it).

        A network always runs warm, as deployed: a cache-mode wrapper of the entries' runtime is left out.
        """
        assert self.space is not None
        return load_artifact(self.cache, network_target(self.space, arch), warm_runtime(self.runtime))

    def prefetch_networks(self, archs: Sequence[str]) -> None:
        """Export the networks the artifact cache lacks in one grouped, parallel call (a stand-in cache: nothing).

        A failure is left to :meth:`load_network`, which names the network at fault.
        """
        if self.space is not None:
            prefetch_artifacts(self.cache, [network_target(self.space, a) for a in archs], self.runtime.format)

    def close(self) -> None:
        """Release the sentinel."""
        if self.sentinel is not None:
            self.sentinel.close()
            self.sentinel = None


def prepare_job(
    job: dict[str, Any],
    config: AgentConfig,
    serial: str | None,
    *,
    lut_text: Callable[[], str],
    host: dict[str, Any],
    agent: str,
    hooks: AgentHooks,
    cache: Any = None,
) -> JobState:
    """Check the settings, export what the cache lacks, measure the overhead, load the sentinel.

    ``lut_text`` fetches the job's LUT as the server holds it (its entries so
    far, its space and the provenance of earlier uploads); ``host`` and
    ``agent`` go into the provenance of every result. Raises
    :class:`SettingsMismatch` before measuring a job this agent may not measure.
    """
    runtime = runtime_for_job(job, config, serial)
    cfg = job_protocol(job)
    doc = json.loads(lut_text())
    space = SpaceSpec.from_dict(doc["space"])
    provenance: dict[str, Any] = {
        "runtime": runtime.settings(),
        "exporter": {"format": runtime.format, "versions": exporter_versions(runtime.format)},
        "host": host,
        "protocol": cfg.to_dict(),
    }
    earlier = doc.get("provenance") or {}
    if earlier.get("runtime"):
        diff = earlier_mismatches(earlier, provenance)
        if diff:
            raise SettingsMismatch(
                f"job {job['id']} refused before measuring: earlier results were measured differently; "
                + "; ".join(diff)
            )
    sentinel = default_sentinel(space)
    provenance["sentinel"] = {"key": sentinel.key, "threshold": cfg.sentinel_threshold}
    provenance["agent"] = agent
    restricted = (job.get("options") or {}).get("entries")
    entries = [parse_key(k) for k in restricted] if restricted else space.distinct_entries()
    todo = [e for e in entries if e.key not in (doc.get("entries") or {})]
    hooks.job_started(job, runtime, len(todo))
    cache = cache_or_default(cache)
    networks = unmeasured_networks(job, space)
    if (todo or networks) and isinstance(cache, ArtifactCache):  # a stand-in cache exports nothing
        wanted = [TRIVIAL_ENTRY, sentinel, *todo, *(network_target(space, a) for a in networks)]
        hooks.message(f"job {job['id']}: {len(wanted)} artifacts: cache checked, missing ones exported")
        prefetch_artifacts(cache, wanted, runtime.format)
    state = JobState(runtime, cfg, provenance, cache, space=space)
    if doc.get("overhead_us") is None:
        trivial = state.load(TRIVIAL_ENTRY)
        try:
            overhead = measure_single(TRIVIAL_ENTRY.key, trivial, cfg)
        finally:
            trivial.close()
        if overhead.summary is not None:
            state.overhead_us = overhead.summary.median
            provenance["overhead"] = {"entry": TRIVIAL_ENTRY.key, **overhead.stats()}
    state.sentinel = state.load(sentinel)
    return state
