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

A job says how it is measured in its ``options``: ``protocol`` (fields of
:class:`profiler.protocol.ProtocolConfig`), ``xnnpack``, ``optimization``,
``entries`` (a job restricted to some entries).

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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchspace import ArchitectureError, Entry, SpaceSpec, parse_key, validation_archs

from .coldcache import CACHE_MODES, warm_runtime, with_cache_mode
from .protocol import TRIVIAL_ENTRY, PassReport, ProtocolConfig, measure_batch, measure_single
from .provenance import collect_host, mismatches
from .runtimes import RUNTIME_ALIASES, Loaded, Runtime, canonical_runtime, make_runtime

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


class AgentError(RuntimeError):
    """The agent cannot go on (the server stayed away past its patience, the token is refused, ...)."""


class SettingsMismatch(AgentError):
    """The job asks for runtime settings this agent does not measure with: refused before measuring."""


class _Stopped(Exception):
    """Raised inside a pass callback to end a batch early (stop requested, lease lost)."""


def job_protocol(job: dict[str, Any]) -> ProtocolConfig:
    """The protocol a job asks for (``options["protocol"]``), default settings otherwise."""
    given = (job.get("options") or {}).get("protocol") or {}
    try:
        return ProtocolConfig(**given)
    except (TypeError, ValueError) as exc:
        raise SettingsMismatch(f"job {job.get('id')}: its protocol options cannot be used: {exc}") from None


@dataclass(frozen=True)
class AgentConfig:
    """How an agent runs. ``None`` settings take the job's value; a given one must equal it."""

    server: str
    token: str
    runtime: str | None = None
    threads: int | None = None
    xnnpack: bool | None = None
    optimization: str | None = None
    adb_serials: tuple[str, ...] = ()
    adb_options: dict[str, Any] = field(default_factory=dict)
    job_id: int | None = None
    name: str | None = None
    batch_size: int = 32
    once: bool = False
    patience_s: float = 600.0
    idle_poll_s: float = 5.0
    heartbeat_s: float | None = None
    home: Path | None = None

    def __post_init__(self) -> None:
        if self.runtime is not None and canonical_runtime(self.runtime) is None:
            raise ValueError(f"runtime: unknown runtime {self.runtime!r}; known: ort, tflite, adb")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1")


def runtime_for_job(job: dict[str, Any], config: AgentConfig, serial: str | None = None) -> Runtime:
    """The runtime to measure ``job`` with, or :class:`SettingsMismatch` saying what differs.

    A setting the agent was given must equal the job's; one it was not given
    takes the job's (or the runtime's default). The runtime's own
    ``settings()`` are checked against the job's afterwards, so what is
    compared is what will actually be used.
    """
    options = job.get("options") or {}
    wanted = canonical_runtime(job.get("runtime"))
    problems: list[str] = []
    if wanted is None:
        raise SettingsMismatch(
            f"job {job['id']}: runtime {job.get('runtime')!r} is not one an agent runs (ort, tflite, adb)"
        )
    mine = canonical_runtime(config.runtime)
    if mine is not None and mine != wanted:
        problems.append(f"runtime: the job wants {wanted}, this agent runs {mine}")
    job_threads = job.get("threads")
    if config.threads is not None and job_threads is not None and config.threads != job_threads:
        problems.append(f"threads: the job wants {job_threads}, this agent runs {config.threads}")
    kwargs: dict[str, Any] = {"threads": config.threads or job_threads or 1}
    if wanted in ("tflite", "adb"):
        job_x = options.get("xnnpack")
        if config.xnnpack is not None and job_x is not None and bool(job_x) != config.xnnpack:
            problems.append(f"xnnpack: the job wants {bool(job_x)}, this agent runs {config.xnnpack}")
        kwargs["xnnpack"] = config.xnnpack if config.xnnpack is not None else bool(job_x if job_x is not None else True)
    elif config.xnnpack is not None:
        problems.append("xnnpack: only LiteRT and adb jobs have an XNNPACK setting")
    if wanted == "ort":
        job_o = options.get("optimization")
        if config.optimization is not None and job_o is not None and job_o != config.optimization:
            problems.append(f"optimization: the job wants {job_o}, this agent runs {config.optimization}")
        kwargs["optimization"] = config.optimization or job_o or "all"
    elif config.optimization is not None:
        problems.append("optimization: only onnxruntime jobs have an optimisation level")
    if wanted == "adb":
        kwargs.update(config.adb_options)
        if serial:
            kwargs["serial"] = serial
    if problems:
        raise SettingsMismatch(f"job {job['id']} refused before measuring: " + "; ".join(problems))
    mode = options.get("cache_mode", "warm")  # jobs made before cache modes existed ran warm
    if mode not in CACHE_MODES:
        raise SettingsMismatch(f"job {job['id']}: unknown cache mode {mode!r}; known: {', '.join(CACHE_MODES)}")
    try:
        runtime = with_cache_mode(make_runtime(wanted, **kwargs), mode)
    except ValueError as exc:
        raise SettingsMismatch(f"job {job['id']} refused before measuring: {exc}") from None
    actual = runtime.settings()
    checks = {"threads": job_threads, "xnnpack": options.get("xnnpack"), "optimization": options.get("optimization")}
    for name, value in checks.items():
        if value is not None and name in actual and actual[name] != value:
            problems.append(f"{name}: the job wants {value!r}, the runtime reports {actual[name]!r}")
    if problems:
        raise SettingsMismatch(f"job {job['id']} refused before measuring: " + "; ".join(problems))
    return runtime


def _runtime_view(settings: dict[str, Any]) -> dict[str, Any]:
    """Runtime settings without what differs between identical devices (a phone's serial)."""
    view = dict(settings)
    if isinstance(view.get("phone"), dict):
        view["phone"] = {k: v for k, v in view["phone"].items() if k != "serial"}
    return view


def _checked_mismatches(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Checked provenance fields that differ; a phone's serial and (for adb) the host are not compared."""
    a = {**old, "runtime": _runtime_view(old.get("runtime") or {})}
    b = {**new, "runtime": _runtime_view(new.get("runtime") or {})}
    found = mismatches(a, b)
    if (new.get("runtime") or {}).get("runtime") == "adb":
        found = [m for m in found if not m.startswith("host.")]
    return found


# -- the outbox ----------------------------------------------------------------------
class Outbox:
    """Measured results not yet acknowledged, one fsynced JSON file each, and the leases in flight.

    ``put`` writes a result before anything tries to upload it; ``ack``
    deletes it once the server stored it; ``reject`` moves one the server
    will never take (lease lost, job gone) to ``rejected/`` (kept, not lost).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.pending_dir = self.root / "outbox"
        self.rejected_dir = self.root / "rejected"
        self.leases_dir = self.root / "leases"
        for folder in (self.pending_dir, self.rejected_dir, self.leases_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @staticmethod
    def _write(path: Path, doc: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def put(self, record: dict[str, Any]) -> Path:
        """Keep one result: ``{job_id, lease_id, item_id, key, stats, provenance, overhead_us}``."""
        path = self.pending_dir / f"{record['job_id']}-{record['item_id']}.json"
        with self._lock:
            self._write(path, record)
        return path

    def pending(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every result not yet acknowledged, oldest first."""
        out = []
        with self._lock:
            paths = sorted(self.pending_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            for path in paths:
                try:
                    out.append((path, json.loads(path.read_text())))
                except (OSError, ValueError):
                    continue
        return out

    def ack(self, paths: Sequence[Path]) -> None:
        """The server stored these: forget them."""
        with self._lock:
            for path in paths:
                path.unlink(missing_ok=True)

    def reject(self, path: Path, reason: str) -> None:
        """The server will never take this result: keep it under ``rejected/`` with the reason."""
        with self._lock:
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                return
            self._write(self.rejected_dir / path.name, {**doc, "rejected": reason})
            path.unlink(missing_ok=True)

    def begin_lease(self, job_id: int, lease_id: str, item_ids: Sequence[int] | None) -> None:
        """Remember a lease being claimed (``item_ids`` None: not granted yet) or measured.

        A restarted agent hands back what it did not finish: the unmeasured
        items, or everything the server leased under an id it never heard back about.
        """
        items = None if item_ids is None else list(item_ids)
        self._write(self.leases_dir / f"{lease_id}.json", {"job_id": job_id, "lease_id": lease_id, "items": items})

    def end_lease(self, lease_id: str) -> None:
        """The lease's measuring is over (what finished is in the outbox)."""
        (self.leases_dir / f"{lease_id}.json").unlink(missing_ok=True)

    def leases(self) -> list[dict[str, Any]]:
        """Leases a previous run left behind."""
        out = []
        for path in sorted(self.leases_dir.glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
        return out


class AgentHooks:
    """What an agent reports while it works; every method is optional (no-ops here)."""

    def message(self, text: str) -> None:
        """A line worth showing (a job taken, the server away, a refusal...)."""

    def job_started(self, job: dict[str, Any], runtime: Runtime, todo: int) -> None:
        """The agent serves ``job`` with ``runtime``; ``todo`` entries are not done yet."""

    def batch_started(self, job_id: int, lease_id: str, keys: Sequence[str]) -> None:
        """A batch was claimed and is being measured."""

    def passed(self, job_id: int, report: PassReport) -> None:
        """A pass of the current batch ended."""

    def measured(self, job_id: int, item_id: int, key: str, stats: dict[str, Any]) -> None:
        """An entry finished measuring and is safe in the outbox."""

    def uploaded(self, job_id: int, accepted: int, duplicates: int) -> None:
        """The server acknowledged results."""


def _retryable(exc: BaseException) -> bool:
    from hwlut.client import ApiError, ServerUnreachable

    return isinstance(exc, ServerUnreachable) or (isinstance(exc, ApiError) and exc.status >= 500)


def validation_open(job: dict[str, Any]) -> int:
    """How many of a job's validation networks are still pending or leased (0 for a record without them)."""
    counts = job.get("validation") or {}
    return int(counts.get("pending", 0)) + int(counts.get("leased", 0))


def job_is_open(job: dict[str, Any]) -> bool:
    """Whether a job (as the server shows it) has work left: entries, or validation networks of a complete job."""
    if job.get("kind", "profile") != "profile":
        return False
    return job["status"] in ("pending", "running") or (job["status"] == "complete" and validation_open(job) > 0)


def _claimable(job: dict[str, Any]) -> int:
    """Items of a job that are pending now (entries and validation networks)."""
    return int(job["progress"]["pending"]) + int((job.get("validation") or {}).get("pending", 0))


def _unmeasured_networks(job: dict[str, Any], space: SpaceSpec) -> list[str]:
    """A job's validation networks when none is measured yet (drawn again from ``options["validation"]``).

    Exported with the entries before the first claim, in one grouped
    parallel export. Once some are measured, which are left is not known
    here: each claimed batch exports its own (:meth:`_JobState.prefetch_networks`).
    """
    counts = job.get("validation") or {}
    rounds = (job.get("options") or {}).get("validation")
    if not counts.get("pending") or counts.get("pending") != counts.get("total") or not isinstance(rounds, list):
        return []
    out: list[str] = []
    try:
        for plan in rounds:
            out += validation_archs(space, int(plan.get("n", 0)), int(plan.get("seed", 0)), plan.get("archs") or [])
    except (ArchitectureError, TypeError, ValueError, AttributeError):
        return []
    return list(dict.fromkeys(out))


@dataclass
class _JobState:
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
        from .export import entry_target

        artifact = self.cache.get(entry_target(entry), self.runtime.format)
        return self.runtime.load(artifact.path, artifact.input_shape)

    def network_label(self, arch: str) -> str:
        """The artifact label of a whole network of the job's space."""
        from .export import network_target

        assert self.space is not None
        return network_target(self.space, arch).label

    def load_network(self, arch: str) -> Loaded:
        """Load a whole network of the job's space, exported as one artifact (now when the cache lacks it).

        A network always runs warm, as deployed: a cache-mode wrapper of the entries' runtime is left out.
        """
        from .export import network_target

        assert self.space is not None
        artifact = self.cache.get(network_target(self.space, arch), self.runtime.format)
        return warm_runtime(self.runtime).load(artifact.path, artifact.input_shape)

    def prefetch_networks(self, archs: Sequence[str]) -> None:
        """Export the networks the artifact cache lacks in one grouped, parallel call (a stand-in cache: nothing).

        A failure is left to :meth:`load_network`, which names the network at fault.
        """
        from .export import ArtifactCache, export_many, network_target

        if not archs or self.space is None or not isinstance(self.cache, ArtifactCache):
            return
        with contextlib.suppress(Exception):
            export_many(self.cache, [(network_target(self.space, a), self.runtime.format) for a in archs])

    def close(self) -> None:
        """Release the sentinel."""
        if self.sentinel is not None:
            self.sentinel.close()
            self.sentinel = None


class Agent:
    """Serves one device's profiling jobs from an hwlut server (see the module's docstring)."""

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
        self._client_factory = client_factory
        self._cache = cache
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._wake = threading.Event()
        self._leases: dict[str, tuple[int, float]] = {}
        self._leases_lock = threading.Lock()
        self._lost: set[str] = set()
        self._host = collect_host()
        self._prepared: dict[tuple[int, str | None], _JobState] = {}
        self._upload_lock = threading.Lock()
        self._uploader_done = threading.Event()
        self.device: str | None = None
        self.measured_count = 0
        self.uploaded_count = 0
        self.outbox: Outbox | None = None
        self.slot_dir: Path | None = None

    # -- control ---------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the current pass, hand back the rest of the batch, upload, return (SIGTERM, Ctrl-C)."""
        self._stop.set()
        self._wake.set()

    def abort(self) -> None:
        """Stop at once without draining uploads (a second Ctrl-C); the outbox keeps what was measured."""
        self._abort.set()
        self.stop()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def client(self) -> Any:
        """A new client of the server with the device's token."""
        if self._client_factory is not None:
            return self._client_factory()
        from hwlut.client import HwlutClient

        return HwlutClient(self.config.server, token=self.config.token, timeout=30.0, retries=0)

    def _retrying(self, *, patience: float | None = None, what: str = "") -> Any:
        from tenacity import (
            Retrying,
            retry_if_exception,
            stop_after_delay,
            stop_when_event_set,
            wait_exponential_jitter,
        )

        said = {"done": False}

        def before_sleep(state: Any) -> None:
            if not said["done"]:
                said["done"] = True
                self.hooks.message(f"server unreachable ({what}): {state.outcome.exception()}; retrying with backoff")

        return Retrying(
            stop=stop_after_delay(self.config.patience_s if patience is None else patience)
            | stop_when_event_set(self._abort),
            wait=wait_exponential_jitter(initial=0.2, max=5.0, jitter=0.2),
            retry=retry_if_exception(_retryable),
            sleep=lambda s: self._abort.wait(s),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _call(self, what: str, fn: Callable[[], Any], *, patience: float | None = None) -> Any:
        """``fn()`` retried with backoff while the server is unreachable (or answers 5xx)."""
        from hwlut.client import ServerUnreachable

        try:
            return self._retrying(patience=patience, what=what)(fn)
        except ServerUnreachable as exc:
            raise AgentError(f"{what}: the server stayed unreachable: {exc}") from exc

    # -- slots ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _slot(self) -> Iterator[Path]:
        import fcntl

        from hwlut.paths import hwlut_home

        home = self.config.home or hwlut_home()
        ident = hashlib.sha256(f"{self.config.server.rstrip('/')}\n{self.config.token}".encode()).hexdigest()[:16]
        base = Path(home) / "agents" / ident
        base.mkdir(parents=True, exist_ok=True)
        number = 1
        while True:
            folder = base / f"slot-{number}"
            folder.mkdir(exist_ok=True)
            fh = open(folder / "lock", "a+")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                number += 1
                continue
            break
        try:
            yield folder
        finally:
            fh.close()

    # -- the run -------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until no work is left (``once``), a stop, or an error; returns entries measured here.

        Raises :class:`SettingsMismatch` before measuring a job it may not
        measure, :class:`AgentError` when the server stays away or results
        could not all be uploaded (they stay in the outbox for the next start).
        """
        with self._slot() as folder:
            self.slot_dir = folder
            self.outbox = Outbox(folder)
            uploader = threading.Thread(target=self._upload_loop, name="hwlut-uploader", daemon=True)
            beater = threading.Thread(target=self._heartbeat_loop, name="hwlut-heartbeat", daemon=True)
            uploader.start()
            beater.start()
            try:
                with self.client() as client:
                    self._recover(client)
                    me = self._call("whoami", client.whoami)
                    if not me.get("device"):
                        raise AgentError("the token is no device's token (an agent serves one registered device)")
                    self.device = me["device"]
                    serials = self.config.adb_serials or (None,)
                    if len(serials) == 1:
                        self._work(client, serials[0])
                    else:
                        self._work_parallel(serials)
            finally:
                self._drain()
                self._uploader_done.set()
                self._wake.set()
                uploader.join(timeout=30)
                beater.join(timeout=30)
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

    def _recover(self, client: Any) -> None:
        """Hand back what a previous run of this slot leased but did not finish; its outbox uploads itself."""
        assert self.outbox is not None
        done = {(r["job_id"], r["item_id"]) for _, r in self.outbox.pending()}
        if done:
            self.hooks.message(f"{len(done)} result(s) of a previous run in the outbox: uploading them")
            self._wake.set()
        for lease in self.outbox.leases():
            if lease.get("items") is None:  # asked for, answer never recorded: hand back all it holds
                unfinished: list[int] | None = None
            else:
                unfinished = [i for i in lease["items"] if (lease["job_id"], i) not in done]
            if unfinished is None or unfinished:
                from hwlut.client import ApiError

                try:
                    n = self._call(
                        "release",
                        lambda lease=lease, u=unfinished: client.release(lease["job_id"], lease["lease_id"], u),
                    )
                except ApiError as exc:
                    n = 0
                    self.hooks.message(f"could not hand back lease {lease['lease_id'][:8]}: {exc}")
                self.hooks.message(
                    f"handed back {n} unmeasured item(s) of a previous run's lease (job {lease['job_id']})"
                )
            self.outbox.end_lease(lease["lease_id"])

    def _open_jobs(self, client: Any) -> list[dict[str, Any]]:
        if self.config.job_id is not None:
            job = self._call("job", lambda: client.job(self.config.job_id))
            if job["device"] != self.device:
                raise AgentError(f"job {job['id']} belongs to device {job['device']!r}, this token to {self.device!r}")
            return [job] if job_is_open(job) else []
        jobs = self._call("jobs", lambda: client.jobs(self.device))
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
        job = self._call("job", lambda: client.job(job_id))
        progress = job["progress"]
        return progress["pending"] == 0 and progress["leased"] == 0 and validation_open(job) == 0

    def _prepare(self, client: Any, job: dict[str, Any], serial: str | None) -> _JobState:
        """Check the settings, export what the cache lacks, measure the overhead, load the sentinel (once per job)."""
        from .export import ArtifactCache, entry_target, export_many, exporter_versions, network_target
        from .local import default_sentinel

        runtime = runtime_for_job(job, self.config, serial)
        cfg = job_protocol(job)
        doc = json.loads(self._call("lut", lambda: client.lut_text(job["device"], job["id"])))
        space = SpaceSpec.from_dict(doc["space"])
        provenance: dict[str, Any] = {
            "runtime": runtime.settings(),
            "exporter": {"format": runtime.format, "versions": exporter_versions(runtime.format)},
            "host": self._host,
            "protocol": cfg.to_dict(),
        }
        earlier = doc.get("provenance") or {}
        if earlier.get("runtime"):
            diff = _checked_mismatches(earlier, provenance)
            if diff:
                raise SettingsMismatch(
                    f"job {job['id']} refused before measuring: earlier results were measured differently; "
                    + "; ".join(diff)
                )
        sentinel = default_sentinel(space)
        provenance["sentinel"] = {"key": sentinel.key, "threshold": cfg.sentinel_threshold}
        provenance["agent"] = self.name
        restricted = (job.get("options") or {}).get("entries")
        entries = [parse_key(k) for k in restricted] if restricted else space.distinct_entries()
        todo = [e for e in entries if e.key not in (doc.get("entries") or {})]
        self.hooks.job_started(job, runtime, len(todo))
        cache = self._cache if self._cache is not None else ArtifactCache()
        networks = _unmeasured_networks(job, space)
        if (todo or networks) and isinstance(cache, ArtifactCache):
            wanted = [(entry_target(e), runtime.format) for e in [TRIVIAL_ENTRY, sentinel, *todo]]
            wanted += [(network_target(space, a), runtime.format) for a in networks]
            self.hooks.message(f"job {job['id']}: {len(wanted)} artifacts: cache checked, missing ones exported")
            with contextlib.suppress(Exception):  # a failure names itself when that item is loaded
                export_many(cache, wanted)
        state = _JobState(runtime, cfg, provenance, cache, space=space)
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

    def _serve_job(self, client: Any, job: dict[str, Any], serial: str | None) -> bool:
        """Measure ``job``'s items batch by batch until none is left to claim; False when none was claimed."""
        job_key = (job["id"], serial)
        if _claimable(job) == 0 and job_key not in self._prepared:
            return False  # nothing to claim now (leased by others, or done)
        state = self._prepared.get(job_key)
        if state is None:
            state = self._prepared[job_key] = self._prepare(client, job, serial)
        claimed_any = False
        assert self.outbox is not None
        while not self.stopping:
            # The lease id is ours and on disk before we ask: a claim whose answer is lost (a retry, or a
            # kill -9 right after the server granted it) is asked again or handed back by that id.
            lease_id = secrets.token_hex(16)
            self.outbox.begin_lease(job["id"], lease_id, None)
            lease = self._call(
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
        state: _JobState,
    ) -> None:
        from hwlut.client import ApiError

        assert self.outbox is not None
        job_id, lease_id = job["id"], lease.lease_id
        items = {i.key: i for i in lease.items}
        self.outbox.begin_lease(job_id, lease_id, [i.item_id for i in lease.items])
        seconds = float(job.get("lease_seconds") or 300.0)
        with self._leases_lock:
            self._leases[lease_id] = (job_id, seconds)
        self._wake.set()
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
            self._wake.set()

        def failed(key: str, error: str) -> None:
            finished.add(key)
            try:
                self._call("failure", lambda: client.fail(job_id, lease_id, items[key].item_id, error))
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
                if self.stopping or lease_id in self._lost:
                    raise _Stopped

            if loaded:
                with contextlib.suppress(_Stopped):
                    assert state.sentinel is not None
                    result = measure_batch(loaded, state.sentinel, state.config, on_pass=on_pass)
                    for res in result.entries.values():  # outcomes of entries no pass reported
                        if res.key in finished:
                            continue
                        if res.stop_reason == "error":
                            failed(res.key, res.error or "error")
                        elif res.done:
                            keep(res.key, res.stats())
            rest = [items[k].item_id for k in items if k not in finished]
            if rest and lease_id not in self._lost:
                try:
                    n = self._call("release", lambda: client.release(job_id, lease_id, rest), patience=30.0)
                    self.hooks.message(f"job {job_id}: handed back {n} unmeasured item(s)")
                except (ApiError, AgentError) as exc:
                    self.hooks.message(
                        f"job {job_id}: could not hand back {len(rest)} item(s) ({exc}); their lease expires"
                    )
        finally:
            for _, model in loaded:
                model.close()
            with self._leases_lock:
                self._leases.pop(lease_id, None)
            self.outbox.end_lease(lease_id)

    # -- background: heartbeats and uploads ------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        from hwlut.client import HwlutError, NotFound

        last: dict[str, float] = {}
        with self.client() as client:
            while not self._uploader_done.is_set():
                now = time.monotonic()
                with self._leases_lock:
                    leases = dict(self._leases)
                waits = [1.0]
                for lease_id, (job_id, seconds) in leases.items():
                    every = self.config.heartbeat_s or max(0.2, seconds / 3)
                    if now - last.setdefault(lease_id, now) >= every:
                        last[lease_id] = now
                        try:
                            client.heartbeat(job_id, lease_id)
                        except NotFound:
                            self._lost.add(lease_id)  # reclaimed by another agent: stop measuring it
                        except HwlutError:
                            pass  # the server is away; the next beat tries again
                    waits.append(every - (time.monotonic() - last[lease_id]))
                self._uploader_done.wait(max(0.05, min(waits)))

    def _upload_loop(self) -> None:
        with self.client() as client:
            while not self._uploader_done.is_set():
                self._wake.wait(1.0)
                self._wake.clear()
                if self._abort.is_set():
                    return
                with contextlib.suppress(AgentError):
                    self._upload_pending(client, patience=self.config.patience_s)

    def _drain(self) -> None:
        """Upload what the outbox holds before returning (not after an abort)."""
        if self._abort.is_set() or self.outbox is None:
            return
        with self.client() as client, contextlib.suppress(AgentError):
            self._upload_pending(client, patience=min(self.config.patience_s, 60.0))

    def _upload_pending(self, client: Any, *, patience: float) -> None:
        """Upload every outbox record, grouped by lease; acknowledged ones are deleted."""
        from hwlut.client import ApiError, Conflict

        assert self.outbox is not None
        with self._upload_lock:
            groups: dict[tuple[int, str], list[tuple[Path, dict[str, Any]]]] = {}
            for path, record in self.outbox.pending():
                groups.setdefault((record["job_id"], record["lease_id"]), []).append((path, record))
            for (job_id, lease_id), group in groups.items():
                try:
                    self._upload_group(client, job_id, lease_id, group, patience)
                except Conflict:
                    for path, record in group:  # one by one: keep what the server takes
                        try:
                            self._upload_group(client, job_id, lease_id, [(path, record)], patience)
                        except ApiError as exc:
                            self.outbox.reject(path, str(exc))
                            self.hooks.message(
                                f"job {job_id}: result of {record['key']} refused ({exc}); kept in rejected/"
                            )
                except ApiError as exc:
                    if exc.status >= 500:
                        continue
                    for path, _ in group:
                        self.outbox.reject(path, str(exc))
                    self.hooks.message(f"job {job_id}: {len(group)} result(s) refused ({exc}); kept in rejected/")

    def _upload_group(
        self, client: Any, job_id: int, lease_id: str, group: list[tuple[Path, dict[str, Any]]], patience: float
    ) -> None:
        assert self.outbox is not None
        results = [{"item_id": r["item_id"], "stats": r["stats"]} for _, r in group]
        overhead = next((r["overhead_us"] for _, r in group if r.get("overhead_us") is not None), None)
        provenance = group[0][1].get("provenance") or {}
        answer = self._call(
            "upload",
            lambda: client.upload(job_id, lease_id, results, provenance=provenance, overhead_us=overhead),
            patience=patience,
        )
        self.outbox.ack([p for p, _ in group])
        self.uploaded_count += answer["accepted"]
        self.hooks.uploaded(job_id, answer["accepted"], answer["duplicates"])
