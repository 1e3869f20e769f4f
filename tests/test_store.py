"""The LUT store on SQLite and PostgreSQL: migrations, the agent protocol's guarantees, imports."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select, text
from testdata import REFERENCE_LUTS

from lut_store import SchemaBehind, Store, crud, current_revision, head_revision, read_table, write_table
from lut_store.models import Job, LutEntry, WorkItem, utcnow
from lut_store.testing import empty_store
from searchspace import JobSettings, fbnet_space

ORT = JobSettings(runtime="ort")


def _job(store: Store, resolution: int = 32, max_attempts: int = 3) -> int:
    with store.transaction(write=True) as session:
        device, _ = crud.create_device(session=session, name="dev")
        job = crud.create_job(
            session=session, device=device, spec=fbnet_space(resolution), settings=ORT, max_attempts=max_attempts
        )
        return job.id


def test_migrations_from_empty_to_head(db_kind: str, tmp_path: Path) -> None:
    s = empty_store(db_kind, tmp_path)
    assert current_revision(s.engine) is None
    with pytest.raises(SchemaBehind, match="hwlut db upgrade"):
        s.check_schema()
    assert s.upgrade() == head_revision()
    assert s.check_schema() == head_revision()
    assert s.upgrade() == head_revision()  # idempotent
    with s.transaction() as session:
        assert session.scalar(select(func.count()).select_from(LutEntry)) == 0
    s.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'x.db'}")
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    s.dispose()


def test_default_database_lives_in_hwlut_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lut_store import database_url

    monkeypatch.delenv("HWLUT_DATABASE_URL", raising=False)
    monkeypatch.setenv("HWLUT_HOME", str(tmp_path))
    assert database_url() == f"sqlite:///{tmp_path / 'hwlut.db'}"
    monkeypatch.setenv("HWLUT_DATABASE_URL", "sqlite:///elsewhere.db")
    assert database_url() == "sqlite:///elsewhere.db"
    assert database_url("postgresql+psycopg://x/y") == "postgresql+psycopg://x/y"


def test_job_items_are_the_distinct_entries(store: Store) -> None:
    job_id = _job(store)
    with store.transaction() as session:
        keys = set(session.scalars(select(WorkItem.key).where(WorkItem.job_id == job_id)))
    assert keys == {e.key for e in fbnet_space(32).distinct_entries()}


def test_concurrent_claims_never_share_an_item(store: Store) -> None:
    job_id = _job(store)
    got: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def claimer(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            mine: list[int] = []
            while True:
                with store.transaction(write=True) as session:
                    job = crud.get_job(session=session, job_id=job_id)
                    lease = crud.claim_items(session=session, job=job, agent=f"a{n}", max_items=7)
                    ids = [i.id for i in lease.items]
                if not ids:
                    break
                mine.extend(ids)
            got.append(mine)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    flat = [i for ids in got for i in ids]
    assert len(flat) == len(set(flat)) == len(fbnet_space(32).distinct_entries())


def test_expired_lease_is_reclaimed_and_heartbeat_extends(store: Store) -> None:
    job_id = _job(store)
    t0 = utcnow()
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        first = crud.claim_items(session=session, job=job, agent="a", max_items=3, lease_seconds=10, now=t0)
        lease_a = first.lease_id
        ids_a = {i.id for i in first.items}
        crud.heartbeat(session=session, job=job, lease_id=lease_a, lease_seconds=10, now=t0 + timedelta(seconds=5))
        # at t0+12 the heartbeat (until t0+15) still protects the items
        other = crud.claim_items(session=session, job=job, agent="b", max_items=500, now=t0 + timedelta(seconds=12))
        assert ids_a.isdisjoint(i.id for i in other.items)
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        again = crud.claim_items(session=session, job=job, agent="c", max_items=500, now=t0 + timedelta(seconds=16))
        assert {i.id for i in again.items} == ids_a
        with pytest.raises(crud.NotFound):
            crud.heartbeat(session=session, job=job, lease_id=lease_a)
        # the old holder can no longer upload them
        with pytest.raises(crud.Conflict):
            crud.upload_results(
                session=session, job=job, lease_id=lease_a, results=[{"item_id": min(ids_a), "stats": {"median": 1.0}}]
            )


def test_a_claim_with_the_agents_lease_id_is_idempotent(store: Store) -> None:
    job_id = _job(store)
    lease_id = "a1" * 16
    t0 = utcnow()
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        first = crud.claim_items(session=session, job=job, agent="a", max_items=3, lease_id=lease_id, now=t0)
        ids = [i.id for i in first.items]
        assert first.lease_id == lease_id and len(ids) == 3
    with store.transaction(write=True) as session:  # the answer was lost: the agent asks again, same id
        job = crud.get_job(session=session, job_id=job_id)
        later = t0 + timedelta(seconds=100)
        again = crud.claim_items(session=session, job=job, agent="a", max_items=3, lease_id=lease_id, now=later)
        assert [i.id for i in again.items] == ids  # the same items, nothing more leased
        assert again.expires_at == later + timedelta(seconds=job.lease_seconds)  # and their lease renewed
        assert crud.job_progress(session=session, job=job)["leased"] == 3
        crud.upload_results(
            session=session, job=job, lease_id=lease_id, results=[{"item_id": i, "stats": {"median": 9.0}} for i in ids]
        )
    with store.transaction(write=True) as session:  # an id whose items are finished is not leased again
        job = crud.get_job(session=session, job_id=job_id)
        with pytest.raises(crud.Conflict) as caught:
            crud.claim_items(session=session, job=job, agent="a", max_items=3, lease_id=lease_id)
        assert caught.value.field == "lease_id"
        assert crud.job_progress(session=session, job=job)["leased"] == 0
        # the same id in another job is another lease: it never reaches the first job's items
        device = crud.get_device(session=session, name="dev")
        other = crud.create_job(session=session, device=device, spec=fbnet_space(32), settings=ORT)
        lease = crud.claim_items(session=session, job=other, agent="a", max_items=2, lease_id=lease_id)
        assert len(lease.items) == 2 and {i.job_id for i in lease.items} == {other.id}


def test_upload_is_idempotent_and_completes_the_job(store: Store) -> None:
    job_id = _job(store)
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        lease = crud.claim_items(session=session, job=job, agent="a", max_items=1000)
        results = [{"item_id": i.id, "stats": {"median": 5.0 + i.id, "count": 9}} for i in lease.items]
        assert crud.upload_results(session=session, job=job, lease_id=lease.lease_id, results=results) == (
            len(results),
            0,
        )
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        assert job.status == "complete"
        assert crud.upload_results(session=session, job=job, lease_id=lease.lease_id, results=results) == (
            0,
            len(results),
        )
        assert session.scalar(select(func.count()).select_from(LutEntry)) == len(results)


@pytest.mark.parametrize(
    ("stats", "field"),
    [
        ({"count": 9}, "results[0].stats.median"),
        ({"median": float("nan")}, "results[0].stats.median"),
        ({"median": 1.0, "p90": -1.0}, "results[0].stats.p90"),
        ({"median": 1.0, "count": 0}, "results[0].stats.count"),
    ],
)
def test_upload_checks_every_statistic_naming_it(store: Store, stats: dict[str, object], field: str) -> None:
    job_id = _job(store)
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        lease = crud.claim_items(session=session, job=job, agent="a", max_items=1)
        with pytest.raises(crud.Invalid) as caught:
            crud.upload_results(
                session=session,
                job=job,
                lease_id=lease.lease_id,
                results=[{"item_id": lease.items[0].id, "stats": stats}],
            )
        assert caught.value.field == field and caught.value.status == 422


def test_failure_retries_then_fails(store: Store) -> None:
    job_id = _job(store, max_attempts=2)
    statuses = []
    for _ in range(2):
        with store.transaction(write=True) as session:
            job = crud.get_job(session=session, job_id=job_id)
            lease = crud.claim_items(session=session, job=job, agent="a", max_items=1)
            item = crud.report_failure(
                session=session, job=job, lease_id=lease.lease_id, item_id=lease.items[0].id, error="boom"
            )
            statuses.append((item.id, item.status, item.attempts))
    assert statuses[0][0] == statuses[1][0]
    assert [s[1:] for s in statuses] == [("pending", 1), ("failed", 2)]


def test_deleting_a_device_cascades(store: Store) -> None:
    _job(store)
    with store.transaction(write=True) as session:
        crud.delete_device(session=session, name="dev")
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(WorkItem)) == 0
        assert session.execute(text("SELECT COUNT(*) FROM jobs")).scalar() == 0


@pytest.mark.parametrize("name", ["ofa_note10_224.yaml", "proxylessnas_mobile_trim.yaml"])
def test_reference_tables_survive_the_database(store: Store, name: str) -> None:
    source = (REFERENCE_LUTS / name).read_text()
    table = read_table(source, filename=name)
    with store.transaction(write=True) as session:
        device, _ = crud.create_device(session=session, name="phone")
        job_id = crud.import_table(session=session, device=device, table=table).id
    with store.transaction() as session:
        snap = crud.lut_snapshot(session=session, job=crud.resolve_lut(session=session, device="phone", ref="latest"))
    assert snap.job_id == job_id
    text_out, left_out = write_table(crud.snapshot_table(snap), table.format)
    assert left_out == []
    original, again = yaml.safe_load(source), yaml.safe_load(text_out)
    assert list(again) == list(original)
    assert again == original  # every key, every value, bit for bit
    # mapped rows answer to their hwlut key; the others to their own
    row = next(r for r in snap.rows if r.entry is not None)
    assert snap.find(row.entry.key) is row
    assert snap.find(row.entry.hwnasbench_key()) is row
    for key in table.unmapped():
        assert snap.find(key).key == key


def test_cli_db_upgrade_and_lut_import_export(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hwlut.cli import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    result = runner.invoke(app, ["db", "upgrade", "--db", url])
    assert result.exit_code == 0 and head_revision() in result.output
    src = REFERENCE_LUTS / "proxylessnas_mobile_trim.yaml"
    result = runner.invoke(app, ["lut", "import", str(src), "--device", "pixel1", "--db", url])
    assert result.exit_code == 0, result.output
    out = tmp_path / "again.yaml"
    result = runner.invoke(
        app, ["lut", "export", "--device", "pixel1", "--db", url, "--format", "proxyless", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text()) == yaml.safe_load(src.read_text())


def test_server_and_store_never_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, server.main, lut_store.crud; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_cli_db_upgrade_takes_a_0001_database_to_head_keeping_its_rows(db_kind: str, tmp_path: Path) -> None:
    """A database made by the first release (revision 0001, a job in it) gains ``jobs.accuracy`` and keeps the job."""
    from typer.testing import CliRunner

    from hwlut.cli import app
    from lut_store.db import upgrade

    s = empty_store(db_kind, tmp_path)
    assert upgrade(s.engine, "0001") == "0001"
    with s.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO devices (name, description, hardware, runtime, created_at) "
                "VALUES ('old', '', '{}', '{}', '2026-01-01 00:00:00')"
            )
        )
        device_id = conn.execute(text("SELECT id FROM devices WHERE name = 'old'")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO jobs (device_id, kind, status, runtime, options, lease_seconds, max_attempts, "
                "provenance, created_at) VALUES (:d, 'import', 'complete', 'ort', '{}', 300, 3, "
                "'{\"note\": \"kept\"}', '2026-01-01 00:00:00')"
            ),
            {"d": device_id},
        )
    url = s.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", url])
    assert result.exit_code == 0, result.output
    assert head_revision() in result.output and current_revision(s.engine) == head_revision() != "0001"
    with s.transaction() as session:
        job = session.scalars(select(Job)).one()
        assert job.provenance == {"note": "kept"} and job.accuracy is None and job.device.name == "old"
    s.dispose()


#: An upload's provenance as an agent sends it (the checked fields and some that are not).
MEASURED = {
    "runtime": {"runtime": "ort", "threads": 1, "optimization": "all"},
    "exporter": {"format": "onnx", "versions": {"torch": "2.13.0"}},
    "host": {"cpu_model": "Test CPU", "machine": "x86_64", "hostname": "box-1"},
    "protocol": {"time_cap_s": 3.0},
}


def _job_state(store: Store, job_id: int) -> tuple[object, ...]:
    """What an upload may change: the job's provenance and status, its items, its LUT entries."""
    with store.transaction() as session:
        job = crud.get_job(session=session, job_id=job_id)
        items = session.execute(
            select(WorkItem.id, WorkItem.status, WorkItem.lease_id)
            .where(WorkItem.job_id == job_id)
            .order_by(WorkItem.id)
        ).all()
        entries = session.scalar(select(func.count()).select_from(LutEntry).where(LutEntry.job_id == job_id))
        return job.provenance, job.status, job.overhead_us, [tuple(i) for i in items], entries


def test_an_upload_measured_differently_is_refused_naming_the_fields_and_stores_nothing(store: Store) -> None:
    job_id = _job(store)
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        lease = crud.claim_items(session=session, job=job, agent="a", max_items=4)
        first, second, third, fourth = (i.id for i in lease.items)
        crud.upload_results(
            session=session,
            job=job,
            lease_id=lease.lease_id,
            results=[{"item_id": first, "stats": {"median": 1.0}}],
            provenance=MEASURED,
        )
    before = _job_state(store, job_id)
    other = {
        **MEASURED,
        "runtime": {**MEASURED["runtime"], "threads": 2},
        "host": {**MEASURED["host"], "machine": "arm"},
    }
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        with pytest.raises(crud.Conflict) as caught:
            crud.upload_results(
                session=session,
                job=job,
                lease_id=lease.lease_id,
                results=[{"item_id": second, "stats": {"median": 2.0}}],
                provenance=other,
                overhead_us=3.0,
            )
    assert caught.value.field == "provenance" and caught.value.status == 409
    assert "provenance.runtime.threads: 1 != 2" in caught.value.message
    assert "provenance.host.machine: 'x86_64' != 'arm'" in caught.value.message
    assert _job_state(store, job_id) == before  # the caller committed: the refusal wrote nothing
    # what is not checked may differ (another identical box, another protocol): merged
    same = {**MEASURED, "host": {**MEASURED["host"], "hostname": "box-2"}, "protocol": {"time_cap_s": 1.0}}
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        ok = crud.upload_results(
            session=session,
            job=job,
            lease_id=lease.lease_id,
            results=[{"item_id": second, "stats": {"median": 2.0}}],
            provenance=same,
        )
        assert ok == (1, 0) and job.provenance["host"]["hostname"] == "box-1"  # the first upload's record stays
        # an upload without provenance says nothing to compare: accepted as before
        assert crud.upload_results(
            session=session, job=job, lease_id=lease.lease_id, results=[{"item_id": third, "stats": {"median": 3.0}}]
        ) == (1, 0)
        # one that carries provenance but none of the checked fields differs in all of them
        with pytest.raises(crud.Conflict, match=r"provenance\.runtime\.runtime: 'ort' != None"):
            crud.upload_results(
                session=session,
                job=job,
                lease_id=lease.lease_id,
                results=[{"item_id": fourth, "stats": {"median": 4.0}}],
                provenance={"agent": "someone"},
            )


def test_identical_phones_share_a_job_and_another_model_is_refused(store: Store) -> None:
    """A phone's serial and the host that drives it may differ between identical devices; the phone's model may not."""
    job_id = _job(store)
    phone = {"runtime": "adb", "threads": 1, "phone": {"model": "Pixel 7", "serial": "A1"}}
    first = {**MEASURED, "runtime": phone, "exporter": {"format": "tflite", "versions": {"torch": "2.13.0"}}}
    other_unit = {
        **first,
        "runtime": {**phone, "phone": {"model": "Pixel 7", "serial": "B2"}},
        "host": {"cpu_model": "M2"},
    }
    other_model = {**first, "runtime": {**phone, "phone": {"model": "Pixel 8", "serial": "C3"}}}
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        lease = crud.claim_items(session=session, job=job, agent="a", max_items=3)
        ids = [i.id for i in lease.items]

        def upload(item: int, provenance: dict[str, object]) -> tuple[int, int]:
            results = [{"item_id": item, "stats": {"median": 1.0}}]
            return crud.upload_results(
                session=session, job=job, lease_id=lease.lease_id, results=results, provenance=provenance
            )

        assert upload(ids[0], first) == (1, 0)
        assert upload(ids[1], other_unit) == (1, 0)
        with pytest.raises(crud.Conflict) as caught:
            upload(ids[2], other_model)
        assert caught.value.message.endswith("provenance.runtime.phone.model: 'Pixel 7' != 'Pixel 8'")
        assert crud.job_progress(session=session, job=job)["done"] == 2
