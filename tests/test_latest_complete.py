"""``latest`` names a complete LUT only: one holding every distinct entry of its space (SQLite, PostgreSQL, CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hwlut.cli import app
from lut_store import Store, crud, read_table
from searchspace import JobSettings, LatencyTable, fbnet_space

SPACE = fbnet_space(32)
ENTRIES = SPACE.distinct_entries()


def _table(n: int | None = None) -> LatencyTable:
    chosen = ENTRIES if n is None else ENTRIES[:n]
    return LatencyTable(space=SPACE, entries={e.key: {"median": 1.0 + i} for i, e in enumerate(chosen)})


def _import(session, device, n: int | None = None) -> int:
    table = read_table(json.dumps(_table(n).to_dict()), "hwlut")
    return crud.import_table(session=session, device=device, table=table).id


def _restricted_job(session, device, keys: list[str]) -> int:
    job = crud.create_job(session=session, device=device, spec=SPACE, settings=JobSettings(runtime="ort"), entries=keys)
    lease = crud.claim_items(session=session, job=job, agent="a", max_items=len(keys))
    results = [{"item_id": item.id, "stats": {"median": 2.0}} for item in lease.items]
    crud.upload_results(session=session, job=job, lease_id=lease.lease_id, results=results)
    assert job.status == "complete"
    return job.id


def test_latest_skips_partial_imports_and_restricted_jobs(store: Store) -> None:
    with store.transaction(write=True) as session:
        device, _ = crud.create_device(session=session, name="dev")
        full = _import(session, device)
        partial = _import(session, device, n=len(ENTRIES) - 3)  # newer, but 3 entries short
        restricted = _restricted_job(session, device, [e.key for e in ENTRIES[:2]])  # newest, 2 entries only
    with store.transaction() as session:
        assert crud.resolve_lut(session=session, device="dev", ref="latest").id == full
        for job_id, complete in ((full, True), (partial, False), (restricted, False)):
            job = crud.resolve_lut(session=session, device="dev", ref=job_id)  # a partial one by its id still
            assert crud.lut_snapshot(session=session, job=job).complete is complete
            assert crud.covers_space(session=session, job=job) is complete


def test_latest_with_only_partial_luts_names_them_and_the_way_to_pick_one(store: Store) -> None:
    with store.transaction(write=True) as session:
        device, _ = crud.create_device(session=session, name="half")
        partial = _import(session, device, n=5)
        restricted = _restricted_job(session, device, [ENTRIES[0].key])
    with store.transaction() as session, pytest.raises(crud.NotFound) as caught:
        crud.resolve_lut(session=session, device="half", ref="latest")
    message = str(caught.value)
    assert "'half'" in message and "only partial LUTs" in message
    assert f"job {restricted}, {partial}" in message and f"--job {restricted}" in message
    assert caught.value.status == 404


def test_cli_latest_refuses_a_partial_import(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    src = tmp_path / "partial.json"
    _table(n=10).save(src)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    result = runner.invoke(app, ["lut", "import", str(src), "--device", "box", "--db", url])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["lut", "export", "--device", "box", "--db", url, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "device 'box' has only partial LUTs (job 1" in result.output and "--job 1" in result.output
    assert "Traceback" not in result.output and not out.exists()
    result = runner.invoke(app, ["lut", "export", "--device", "box", "--db", url, "--job", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(LatencyTable.load(out).entries) == 10
