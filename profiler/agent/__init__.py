"""The device agent: claim work from an hwlut server, measure it with the protocol, upload as it finishes.

One :class:`Agent` serves one registered device (its token says which). In a
loop it picks an open profiling job of the device, checks that the runtime
settings it would measure with are the job's (runtime, threads, XNNPACK,
optimisation level, and the checked provenance of earlier uploads: refused
*before* measuring, :class:`SettingsMismatch`), exports every entry of the
job that the artifact cache lacks in one grouped parallel export, and then:

1. **claims** a batch of work items under a lease (``batch_size`` items);
2. **measures** the batch with :func:`profiler.protocol.measure_batch`
   (interleaved passes, the space's sentinel in every pass) while a
   background thread **heartbeats** the lease;
3. writes each entry that finishes to the **outbox** (a JSON file per result
   under ``$HWLUT_HOME/agents/…/outbox``, fsynced) at once; an uploader
   thread **uploads** the outbox with its provenance, retrying with
   exponential backoff (tenacity) while the server is away, and deletes a
   record only when the server has acknowledged it;
4. claims the next batch, until the job (and, without ``job_id``, every open
   job of the device that it may serve) is done.

Crashes and stops:

- ``stop()`` (SIGTERM, Ctrl-C) ends the current pass, keeps what finished,
  hands the rest of the lease back (``release``: claimable at once, no
  attempt counted), drains the outbox and returns.
- After ``kill -9`` what was uploaded stays; what finished but was not
  acknowledged is in the outbox. A restarted agent (same server and token,
  same ``$HWLUT_HOME``) uploads the outbox under the old lease and hands
  back the old lease's unmeasured items before it claims anything, so no
  item is measured twice. An agent that never comes back loses its lease
  when it expires, and another agent takes the rest.
- Several agents of one device and one home use separate *slots*
  (``slot-1``, ``slot-2``…, each held with an exclusive file lock), so they
  never touch each other's outbox; a restarted agent takes the first free
  slot, that of the agent that died.

A job says how it is measured in its settings
(:class:`searchspace.jobs.JobSettings`, read by
:func:`~profiler.agent.config.job_settings`): runtime, threads and, in its
``options``, ``protocol`` (fields of :class:`profiler.protocol.ProtocolConfig`),
``xnnpack``, ``optimization``, ``cache_mode``; ``options["entries"]``
restricts a job to some entries.

Validation networks: a job may hold work items of kind ``network`` (a whole
architecture of the job's space, ``fields["arch"]``), spread among its
entries. A claimed batch's networks are exported through the artifact cache
(:func:`profiler.export.network_target`, the batch's missing ones in one
:func:`profiler.export.export_many`), loaded with the job's runtime and
measured in the same :func:`~profiler.protocol.measure_batch` call as the
batch's entries (same sentinel, same passes), so a slow spell touches both
alike; their results go through the same outbox and upload. The server
stores them apart from the LUT and computes the LUT's accuracy from them. A
complete job whose validation networks are not all measured is still served.

The package, one module per concern: :mod:`~profiler.agent.config` (the
agent's settings, job matching, the errors), :mod:`~profiler.agent.job`
(a job made ready once: checks, exports, overhead, sentinel),
:mod:`~profiler.agent.outbox`, :mod:`~profiler.agent.sync` (retries, slot
locks, heartbeat and upload threads; every HTTP call through
:mod:`lutclient`) and :mod:`~profiler.agent.loop` (the measuring loop).
"""

from __future__ import annotations

from ..runtimes import RUNTIME_ALIASES, canonical_runtime
from .config import (
    AgentConfig,
    AgentError,
    AgentHooks,
    SettingsMismatch,
    job_is_open,
    job_protocol,
    runtime_for_job,
    validation_open,
)
from .loop import Agent
from .outbox import Outbox

__all__ = [
    "RUNTIME_ALIASES",
    "Agent",
    "AgentConfig",
    "AgentError",
    "AgentHooks",
    "Outbox",
    "SettingsMismatch",
    "canonical_runtime",
    "job_is_open",
    "job_protocol",
    "runtime_for_job",
    "validation_open",
]
