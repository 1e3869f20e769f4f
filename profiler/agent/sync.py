"""The agent's side of the wire: retries, slot locks, heartbeats and uploads, all through :mod:`lutclient`.

:class:`ServerSync` holds what the measuring loop (:class:`profiler.agent.Agent`)
shares with its two background threads:

- every call to the server goes through :meth:`ServerSync.call`, retried
  with exponential backoff (tenacity) while the server is unreachable or
  answers 5xx, for at most the agent's patience;
- the **heartbeat** thread keeps the leases being measured alive and marks
  one the server no longer knows as lost (:attr:`ServerSync.lost`), so the
  loop stops measuring it;
- the **uploader** thread uploads the outbox with its provenance, grouped
  by lease, and deletes a record only when the server acknowledged it (one
  it refuses for good goes to ``rejected/``);
- :meth:`ServerSync.recover` hands back what a previous run of the slot
  leased and did not finish.

:func:`slot` takes the first free slot folder of an agent home (an exclusive
file lock), so several agents of one device never share an outbox.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lutclient import ApiError, Conflict, HwlutClient, HwlutError, NotFound, ServerUnreachable
from searchspace.paths import hwlut_home

from .config import AgentConfig, AgentError, AgentHooks
from .outbox import Outbox

__all__ = ["ServerSync", "retryable", "slot"]


def retryable(exc: BaseException) -> bool:
    """Whether a failed call is worth trying again: the server unreachable, or a 5xx answer."""
    return isinstance(exc, ServerUnreachable) or (isinstance(exc, ApiError) and exc.status >= 500)


@contextlib.contextmanager
def slot(home: Path | None, server: str, token: str) -> Iterator[Path]:
    """The first free ``slot-N`` folder of this server and token under ``home``, locked while in use."""
    import fcntl

    home = home or hwlut_home()
    ident = hashlib.sha256(f"{server.rstrip('/')}\n{token}".encode()).hexdigest()[:16]
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


class ServerSync:
    """Calls with retries, and the heartbeat and upload threads of one agent (see the module's docstring)."""

    def __init__(self, config: AgentConfig, hooks: AgentHooks, client_factory: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.hooks = hooks
        self._client_factory = client_factory
        #: Set to stop at once: no more retries, no draining of the outbox.
        self.abort = threading.Event()
        #: Set on a stop (SIGTERM, Ctrl-C): a call still gets one try, but no retry and no backoff sleep,
        #: so an agent whose server is down stops within seconds; the outbox keeps its results.
        self.stopping = threading.Event()
        #: Set when there is something to upload or a new lease to heartbeat.
        self.wake = threading.Event()
        #: Leases the server no longer knows (reclaimed by another agent): stop measuring them.
        self.lost: set[str] = set()
        self.outbox: Outbox | None = None
        self.uploaded_count = 0
        self._leases: dict[str, tuple[int, float]] = {}
        self._leases_lock = threading.Lock()
        self._upload_lock = threading.Lock()
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []

    def client(self) -> Any:
        """A new client of the server with the device's token."""
        if self._client_factory is not None:
            return self._client_factory()
        return HwlutClient(self.config.server, token=self.config.token, timeout=30.0, retries=0)

    # -- calls ------------------------------------------------------------------------------------
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
            | stop_when_event_set(self.abort)
            | stop_when_event_set(self.stopping),
            wait=wait_exponential_jitter(initial=0.2, max=5.0, jitter=0.2),
            retry=retry_if_exception(retryable),
            sleep=lambda s: self.stopping.wait(s) or self.abort.wait(0),
            before_sleep=before_sleep,
            reraise=True,
        )

    def call(self, what: str, fn: Callable[[], Any], *, patience: float | None = None) -> Any:
        """``fn()`` retried with backoff while the server is unreachable (or answers 5xx)."""
        try:
            return self._retrying(patience=patience, what=what)(fn)
        except ServerUnreachable as exc:
            raise AgentError(f"{what}: the server stayed unreachable: {exc}") from exc

    # -- leases being measured ----------------------------------------------------------------------
    def hold(self, job_id: int, lease_id: str, seconds: float) -> None:
        """Heartbeat ``lease_id`` (``seconds`` long) until :meth:`let_go`."""
        with self._leases_lock:
            self._leases[lease_id] = (job_id, seconds)
        self.wake.set()

    def let_go(self, lease_id: str) -> None:
        """Stop heartbeating ``lease_id``."""
        with self._leases_lock:
            self._leases.pop(lease_id, None)

    def recover(self, client: Any) -> None:
        """Hand back what a previous run of this slot leased but did not finish; its outbox uploads itself."""
        assert self.outbox is not None
        done = {(r["job_id"], r["item_id"]) for _, r in self.outbox.pending()}
        if done:
            self.hooks.message(f"{len(done)} result(s) of a previous run in the outbox: uploading them")
            self.wake.set()
        for lease in self.outbox.leases():
            if lease.get("items") is None:  # asked for, answer never recorded: hand back all it holds
                unfinished: list[int] | None = None
            else:
                unfinished = [i for i in lease["items"] if (lease["job_id"], i) not in done]
            if unfinished is None or unfinished:
                try:
                    n = self.call(
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

    # -- the background threads ----------------------------------------------------------------------
    def start(self, outbox: Outbox) -> None:
        """Start the uploader (of ``outbox``) and the heartbeat threads."""
        self.outbox = outbox
        self._threads = [
            threading.Thread(target=self._upload_loop, name="hwlut-uploader", daemon=True),
            threading.Thread(target=self._heartbeat_loop, name="hwlut-heartbeat", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        """Upload what the outbox holds (not after an abort), then stop the threads."""
        self._drain()
        self._done.set()
        self.wake.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _heartbeat_loop(self) -> None:
        last: dict[str, float] = {}
        with self.client() as client:
            while not self._done.is_set():
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
                            self.lost.add(lease_id)  # reclaimed by another agent: stop measuring it
                        except HwlutError:
                            pass  # the server is away; the next beat tries again
                    waits.append(every - (time.monotonic() - last[lease_id]))
                self._done.wait(max(0.05, min(waits)))

    def _upload_loop(self) -> None:
        with self.client() as client:
            while not self._done.is_set():
                self.wake.wait(1.0)
                self.wake.clear()
                if self.abort.is_set():
                    return
                with contextlib.suppress(AgentError):
                    self._upload_pending(client, patience=self.config.patience_s)

    def _drain(self) -> None:
        """Upload what the outbox holds before returning (not after an abort)."""
        if self.abort.is_set() or self.outbox is None:
            return
        with self.client() as client, contextlib.suppress(AgentError):
            self._upload_pending(client, patience=min(self.config.patience_s, 60.0))

    def _upload_pending(self, client: Any, *, patience: float) -> None:
        """Upload every outbox record, grouped by lease; acknowledged ones are deleted."""
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
        answer = self.call(
            "upload",
            lambda: client.upload(job_id, lease_id, results, provenance=provenance, overhead_us=overhead),
            patience=patience,
        )
        self.outbox.ack([p for p, _ in group])
        self.uploaded_count += answer["accepted"]
        self.hooks.uploaded(job_id, answer["accepted"], answer["duplicates"])
