"""A schema-driven fuzzer (schemathesis) over every route of the app, in process (ASGI), on SQLite and PostgreSQL.

Each operation gets a bounded number of generated requests, valid and
invalid, sent with the admin token; every answer must be no 5xx, a status
code the schema documents, a documented content type, and a body that
conforms to the documented schema. Each case is sent as generated, then
with its path naming the seeded device, its newest LUT and its job (so that
the fuzzer reaches past the 404 of a random name), then without a token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from testdata import need_postgres

from lut_store import Store, crud
from lut_store.testing import empty_store
from searchspace import fbnet_space
from server import Settings, create_app

ADMIN = "fuzz-admin-token"
DEVICE = "fuzzdev"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
_seed: dict[str, Any] = {}


def _seed_device(store: Store) -> None:
    """A device with one complete LUT of FBNet-32 and one job still open (its id is in ``_seed``)."""
    space = fbnet_space(32)
    with store.transaction(write=True) as session:
        device, _token = crud.create_device(session=session, name=DEVICE)
        done = crud.create_job(session=session, device=device, spec=space, settings={"runtime": "ort"})
        lease = crud.claim_items(session=session, job=done, agent="seed", max_items=10_000)
        crud.upload_results(
            session=session,
            job=done,
            lease_id=lease.lease_id,
            results=[{"item_id": i.id, "stats": {"median": 10.0 + i.id, "count": 3}} for i in lease.items],
        )
        open_job = crud.create_job(session=session, device=device, spec=space, settings={"runtime": "ort"})
        _seed.update(lut=done.id, job=open_job.id)


# The schema is read at import (one test per operation); the store the app serves is laid in by
# the fixture below (routes find it on ``app.state``), so importing this file touches no database.
app = create_app(Settings(admin_token=ADMIN, max_body_bytes=256 * 1024), store=Store("sqlite://"), check_schema=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True, params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The seeded database the app serves: every operation is fuzzed on SQLite and on PostgreSQL."""
    if request.param == "postgres":
        need_postgres()
    store = empty_store(request.param, Path(tmp_path_factory.mktemp("fuzz")))
    store.upgrade()
    _seed_device(store)
    placeholder, app.state.store = app.state.store, store
    yield store
    app.state.store = placeholder
    store.dispose()
    placeholder.dispose()


def _steered(case: Any) -> Any | None:
    """The case with its path naming seeded things (``None`` when it has no such path parameter)."""
    params = dict(case.path_parameters or {})
    if not params or case.method.upper() != case.operation.method.upper():  # a method probe: sent once, as is
        return None
    if case.method.upper() == "DELETE":  # deleting the seeded device would starve later cases
        return None
    values = {"name": DEVICE, "lut": "latest", "job_id": _seed["job"], "a": DEVICE, "b": DEVICE}
    steered = {k: values.get(k, v) for k, v in params.items()}
    if "lut" in params and "job_id" not in params and params["lut"] != "latest":
        steered["lut"] = str(_seed["lut"])
    clone = case.operation.Case(
        method=case.method,
        path_parameters=steered,
        headers=case.headers,
        query=case.query,
        body=case.body,
        media_type=case.media_type,
    )
    return clone


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_fuzz_every_route(case: Any) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    case.call_and_validate(headers=headers, checks=CHECKS)
    steered = _steered(case)
    if steered is not None:
        steered.call_and_validate(headers=headers, checks=CHECKS)
    (steered or case).call_and_validate(checks=CHECKS)  # and without a token: 401 where one is needed
