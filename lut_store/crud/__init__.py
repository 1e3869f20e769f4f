"""Everything the server (and the CLI) does to the database: keyword-only, typed functions, by resource.

Each function works inside the caller's session and transaction and never
commits; a caller runs one transaction per request. Errors are
:class:`~lut_store.errors.StoreError` subclasses naming the field at fault.

=================  ==========================================================
module             what it holds
=================  ==========================================================
``devices``        devices and their tokens
``jobs``           spaces, profiling jobs and their validation plans,
                   lookups, progress, status
``leases``         the agent protocol: claim, heartbeat, upload, release, fail
``luts``           LUT import, a device's LUT by reference, its snapshot
``accuracy``       validation networks added to a job; accuracy reports
``changes``        the signal a write gives when a LUT's answers change
=================  ==========================================================

The pure queries over a snapshot (no session) are :mod:`lut_store.snapshots`;
the errors :mod:`lut_store.errors`. Both are re-exported here, so
``from lut_store import crud; crud.create_device(...)`` reaches everything.
"""

from __future__ import annotations

from ..errors import Conflict, Invalid, NotFound, StoreError
from ..models import utcnow
from ..snapshots import LutSnapshot, accuracy_summary, architecture_latency, compare_luts, snapshot_table
from .accuracy import add_validation, get_accuracy, refresh_job_accuracy, set_accuracy
from .changes import LUTS_CHANGED, mark_luts_changed
from .devices import (
    TOKEN_PREFIX,
    create_device,
    delete_device,
    device_by_token,
    get_device,
    hash_token,
    issue_token,
    list_devices,
)
from .jobs import (
    JOB_STATUSES,
    MAX_VALIDATION_NETWORKS,
    MAX_VALIDATION_SEED,
    cancel_job,
    create_job,
    find_jobs,
    get_job,
    get_or_create_space,
    interleave,
    job_progress,
    job_settings,
    list_jobs,
    validation_progress,
)
from .leases import Lease, claim_items, heartbeat, release_items, report_failure, upload_results
from .luts import covers_space, import_table, lut_snapshot, resolve_lut

__all__ = [
    "JOB_STATUSES",
    "LUTS_CHANGED",
    "MAX_VALIDATION_NETWORKS",
    "MAX_VALIDATION_SEED",
    "TOKEN_PREFIX",
    "Conflict",
    "Invalid",
    "Lease",
    "LutSnapshot",
    "NotFound",
    "StoreError",
    "accuracy_summary",
    "add_validation",
    "architecture_latency",
    "cancel_job",
    "claim_items",
    "compare_luts",
    "covers_space",
    "create_device",
    "create_job",
    "delete_device",
    "device_by_token",
    "find_jobs",
    "get_accuracy",
    "get_device",
    "get_job",
    "get_or_create_space",
    "hash_token",
    "heartbeat",
    "import_table",
    "interleave",
    "issue_token",
    "job_progress",
    "job_settings",
    "list_devices",
    "list_jobs",
    "lut_snapshot",
    "mark_luts_changed",
    "refresh_job_accuracy",
    "release_items",
    "report_failure",
    "resolve_lut",
    "set_accuracy",
    "snapshot_table",
    "upload_results",
    "utcnow",
    "validation_progress",
]
