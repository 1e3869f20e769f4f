"""The measuring loop: :class:`Agent` claims a device's work, measures it batch by batch, keeps each result.

The loop runs in the agent's thread (one per adb serial); what talks to the
server in the background (heartbeats, uploads, retries) is
:class:`~profiler.agent.sync.ServerSync`, what a job needs before its first
claim is :func:`~profiler.agent.job.prepare_job`. See :mod:`profiler.agent`
for the whole story, crashes and stops included.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lutclient import ApiError

from ..calm import run_gate
from ..protocol import PassReport, measure_batch
from ..provenance import collect_host
from ..runtimes import Loaded
from .config import (
    AgentConfig,
    AgentError,
    AgentHooks,
    SettingsMismatch,
    claimable,
    job_is_open,
    runtime_for_job,
    validation_open,
)
from .job import JobState, prepare_job
from .outbox import Outbox
from .sync import ServerSync, slot

__all__ = ["Agent"]


class _Stopped(Exception):
    """Raised inside a pass callback to end a batch early (stop requested, lease lost)."""


class Agent:
    """Serves one device's profiling jobs from an hwlut server (see :mod:`profiler.agent`)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        hooks: AgentHooks | None = None,
        client_factory: Callable[[], Any] | None = None,
        cache: Any = None,
    ) -> None:
        self.config = config
        self.hooks = hooks or AgentHooks()
        self.name = config.name or f"{socket.gethostname()}-{os.getpid()}"
        self.sync = ServerSync(config, self.hooks, client_factory)
        self._cache = cache
        self._stop = threading.Event()
        self._host = collect_host()
        self._prepared: dict[tuple[int, str | None], JobState] = {}
        self.device: str | None = None
        self.measured_count = 0
        self.outbox: Outbox | None = None
        self.slot_dir: Path | None = None

    # -- control ---------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the current pass, hand back the rest of the batch, upload, return (SIGTERM, Ctrl-C)."""
        self._stop.set()
        self.sync.stopping.set()
        self.sync.wake.set()

    def abort(self) -> None:
        """Stop at once without draining uploads (a second Ctrl-C); the outbox keeps what was measured."""
        self.sync.abort.set()
        self.stop()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    @property
    def uploaded_count(self) -> int:
        """Results the server acknowledged so far."""
        return self.sync.uploaded_count

    def client(self) -> Any:
        """A new client of the server with the device's token."""
        return self.sync.client()

    # -- the run -------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until no work is left (``once``), a stop, or an error; returns entries measured here.

        Raises :class:`SettingsMismatch` before measuring a job it may not
        measure, :class:`AgentError` when the server stays away or results
        could not all be uploaded (they stay in the outbox for the next start).
        """
        with slot(self.config.home, self.config.server, self.config.token) as folder:
            self.slot_dir = folder
            self.outbox = Outbox(folder)
            self.sync.start(self.outbox)
            try:
                with self.client() as client:
                    self.sync.recover(client)
                    me = self.sync.call("whoami", client.whoami)
                    if not me.get("device"):
                        raise AgentError("the token is no device's token (an agent serves one registered device)")
                    self.device = me["device"]
                    serials = self.config.adb_serials or (None,)
                    if len(serials) == 1:
                        self._work(client, serials[0])
                    else:
                        self._work_parallel(serials)
            finally:
                self.sync.finish()
            left = len(self.outbox.pending())
            if left:
                raise AgentError(
                    f"{left} measured result(s) are not acknowledged yet; they are kept in {self.outbox.pending_dir} "
                    "and uploaded when the agent starts again"
                )
        return self.measured_count

    def _work_parallel(self, serials: Sequence[str | None]) -> None:
        errors: list[BaseException] = []

        def one(serial: str | None) -> None:
            try:
                with self.client() as client:
                    self._work(client, serial)
            except BaseException as exc:
                errors.append(exc)
                self.stop()

        threads = [threading.Thread(target=one, args=(s,), name=f"hwlut-agent-{s}") for s in serials]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _open_jobs(self, client: Any) -> list[dict[str, Any]]:
        if self.config.job_id is not None:
            job = self.sync.call("job", lambda: client.job(self.config.job_id))
            if job["device"] != self.device:
                raise AgentError(f"job {job['id']} belongs to device {job['device']!r}, this token to {self.device!r}")
            return [job] if job_is_open(job) else []
        jobs = self.sync.call("jobs", lambda: client.jobs(self.device))
        return sorted((j for j in jobs if job_is_open(j)), key=lambda j: j["id"])

    def _refusal(self, job: dict[str, Any], serial: str | None) -> str | None:
        """Why this agent may not measure ``job`` (None: it may)."""
        try:
            runtime_for_job(job, self.config, serial)
        except SettingsMismatch as exc:
            return str(exc)
        return None

    def _work(self, client: Any, serial: str | None) -> None:
        """Serve jobs until none is left (``once``) or a stop."""
        told: set[str] = set()
        try:
            while not self.stopping:
                jobs = self._open_jobs(client)
                if not jobs and self.config.job_id is not None:
                    return  # the one job served is done
                servable, refusals = [], []
                for job in jobs:
                    why = self._refusal(job, serial)
                    if why is None:
                        servable.append(job)
                    elif self.config.job_id is not None:
                        raise SettingsMismatch(why)
                    else:
                        refusals.append(why)
                if refusals and not servable and self.config.once:
                    raise SettingsMismatch(
                        f"no open job of device {self.device!r} fits this agent: " + " | ".join(refusals)
                    )
                for why in refusals:
                    if why not in told:
                        told.add(why)
                        self.hooks.message(f"skipped: {why}")
                if not servable and self.config.once:
                    return
                worked = False
                for job in servable:
                    if self.stopping:
                        return
                    worked |= self._serve_job(client, job, serial)
                if worked:
                    continue
                if self.config.once and all(self._finished(client, j["id"]) for j in servable):
                    return
                self._stop.wait(min(1.0, self.config.idle_poll_s) if self.config.once else self.config.idle_poll_s)
        finally:
            for job_key in [k for k in self._prepared if k[1] == serial]:
                self._prepared.pop(job_key).close()

    def _finished(self, client: Any, job_id: int) -> bool:
        job = self.sync.call("job", lambda: client.job(job_id))
        progress = job["progress"]
        return progress["pending"] == 0 and progress["leased"] == 0 and validation_open(job) == 0

    def _serve_job(self, client: Any, job: dict[str, Any], serial: str | None) -> bool:
        """Measure ``job``'s items batch by batch until none is left to claim; False when none was claimed."""
        job_key = (job["id"], serial)
        if claimable(job) == 0 and job_key not in self._prepared:
            return False  # nothing to claim now (leased by others, or done)
        state = self._prepared.get(job_key)
        if state is None:
            state = self._prepared[job_key] = prepare_job(
                job,
                self.config,
                serial,
                lut_text=lambda: self.sync.call("lut", lambda: client.lut_text(job["device"], job["id"])),
                host=self._host,
                agent=self.name,
                hooks=self.hooks,
                cache=self._cache,
            )
        claimed_any = False
        assert self.outbox is not None
        while not self.stopping:
            # The lease id is ours and on disk before we ask: a claim whose answer is lost (a retry, or a
            # kill -9 right after the server granted it) is asked again or handed back by that id.
            lease_id = secrets.token_hex(16)
            self.outbox.begin_lease(job["id"], lease_id, None)
            lease = self.sync.call(
                "claim",
                lambda lease_id=lease_id: client.claim(
                    job["id"], agent=self.name, max_items=self.config.batch_size, lease_id=lease_id
                ),
            )
            if not lease.items:
                self.outbox.end_lease(lease_id)
                break
            claimed_any = True
            self._measure_lease(client, job, lease, state)
        return claimed_any

    def _measure_lease(
        self,
        client: Any,
        job: dict[str, Any],
        lease: Any,
        state: JobState,
    ) -> None:
        """Measure one claimed batch (entries and networks interleaved), keeping each result as it finishes."""
        assert self.outbox is not None
        job_id, lease_id = job["id"], lease.lease_id
        items = {i.key: i for i in lease.items}
        self.outbox.begin_lease(job_id, lease_id, [i.item_id for i in lease.items])
        seconds = float(job.get("lease_seconds") or 300.0)
        self.sync.hold(job_id, lease_id, seconds)
        self.hooks.batch_started(job_id, lease_id, list(items))
        finished: set[str] = set()

        labels: dict[str, str] = {}  # validation networks: item key -> artifact label

        def keep(key: str, stats: dict[str, Any]) -> None:
            item = items[key]
            extra = {"artifact": labels[key]} if key in labels else {}
            record = {
                "job_id": job_id,
                "lease_id": lease_id,
                "item_id": item.item_id,
                "key": key,
                "stats": {**stats, "agent": self.name, **extra},
                "provenance": state.provenance,
                "overhead_us": state.overhead_us,
            }
            state.overhead_us = None  # sent once
            self.outbox.put(record)
            finished.add(key)
            self.measured_count += 1
            self.hooks.measured(job_id, item.item_id, key, stats)
            self.sync.wake.set()

        def failed(key: str, error: str) -> None:
            finished.add(key)
            try:
                self.sync.call("failure", lambda: client.fail(job_id, lease_id, items[key].item_id, error))
            except ApiError as exc:
                self.hooks.message(f"could not report the failure of {key}: {exc}")
            self.hooks.message(f"job {job_id}: {key} failed: {error}")

        loaded: list[tuple[str, Loaded]] = []
        try:
            state.prefetch_networks([i.arch for i in lease.items if i.kind == "network"])
            for key, item in items.items():
                try:
                    if item.kind == "network":
                        labels[key] = state.network_label(item.arch)
                        loaded.append((key, state.load_network(item.arch)))
                    elif item.kind == "entry":
                        loaded.append((key, state.load(item.entry)))
                    else:
                        raise ValueError(f"unknown work item kind {item.kind!r} (this agent measures entry, network)")
                except Exception as exc:  # an item that cannot be exported or loaded is that item's failure
                    failed(key, f"load: {type(exc).__name__}: {exc}")

            def on_pass(report: PassReport) -> None:
                for res in report.finished:
                    if res.stop_reason == "error":
                        failed(res.key, res.error or "error")
                    else:
                        keep(res.key, res.stats())
                self.hooks.passed(job_id, report)
                if self.stopping or lease_id in self.sync.lost:
                    raise _Stopped

            if loaded:
                assert state.sentinel is not None
                # the gate's totals travel in the provenance of every result (the server keeps the newest)
                first = "calm" not in state.provenance
                run_gate(state.sentinel, self.config.calm, state.provenance, first=first, where=f"job {job_id}")
                with contextlib.suppress(_Stopped):
                    result = measure_batch(loaded, state.sentinel, state.config, on_pass=on_pass)
                    for res in result.entries.values():  # outcomes of entries no pass reported
                        if res.key in finished:
                            continue
                        if res.stop_reason == "error":
                            failed(res.key, res.error or "error")
                        elif res.done:
                            keep(res.key, res.stats())
            rest = [items[k].item_id for k in items if k not in finished]
            if rest and lease_id not in self.sync.lost:
                try:
                    n = self.sync.call("release", lambda: client.release(job_id, lease_id, rest), patience=30.0)
                    self.hooks.message(f"job {job_id}: handed back {n} unmeasured item(s)")
                except (ApiError, AgentError) as exc:
                    self.hooks.message(
                        f"job {job_id}: could not hand back {len(rest)} item(s) ({exc}); their lease expires"
                    )
        finally:
            for _, model in loaded:
                model.close()
            self.sync.let_go(lease_id)
            self.outbox.end_lease(lease_id)
