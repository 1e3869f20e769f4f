"""The CLI as a newcomer types it: one error style and exit codes, one vocabulary, the commands people look for.

A real uvicorn on 127.0.0.1 serves a SQLite file; commands run through
Typer's CliRunner, and the table of user mistakes as real processes (their
stderr must hold no traceback).
"""

from __future__ import annotations

import json
import os
import random
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner, Result

from hwlut.cli import app
from lut_store import Store
from lutclient import HwlutClient
from searchspace import LatencyTable, load_space
from server import Settings, create_app

ADMIN = "ux-admin-token"
SPACE = load_space("fbnet", resolution=32)
WIDE = {"COLUMNS": "200"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A uvicorn on 127.0.0.1 over a fresh SQLite file: its URL and database URL."""
    db = f"sqlite:///{tmp_path_factory.mktemp('ux') / 'hwlut.db'}"
    store = Store(db)
    store.upgrade()
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Settings(admin_token=ADMIN), store=store), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)  # polling interval
    yield {"url": f"http://127.0.0.1:{port}", "db": db}
    server.should_exit = True
    thread.join(timeout=20)
    store.dispose()


def run(*args: str, env: dict[str, Any] | None = None, input: str | None = None) -> Result:
    """``hwlut ARGS`` in-process, with no token or server from the environment unless ``env`` gives them."""
    base = {"HWLUT_TOKEN": None, "HWLUT_ADMIN_TOKEN": None, "HWLUT_SERVER": None, "HWLUT_DEBUG": None, **WIDE}
    return CliRunner().invoke(app, list(args), env={**base, **(env or {})}, input=input)


def _device(served: dict[str, str], name: str) -> str:
    """Register ``name`` and return its token."""
    done = run("device", "register", name, "--server", served["url"], "--token", ADMIN)
    assert done.exit_code == 0, done.output
    return next(line for line in done.output.splitlines() if line.startswith("hwlut_"))


# -- wrong or lost results ------------------------------------------------------------------------
def test_job_list_finds_a_job_and_job_cancel_removes_it_from_the_agents_work(served: dict[str, str]) -> None:
    token = _device(served, "lister")
    env = {"HWLUT_SERVER": served["url"]}
    made = run("job", "create", "--device", "lister", "-r", "32", "--entry", SPACE.distinct_entries()[0].key,
               "--token", token, env=env)  # fmt: skip
    assert made.exit_code == 0, made.output
    job_id = int(made.stdout.split()[1])  # stdout: the in-process server's JSON access log goes to stderr
    assert f"hwlut agent --server {served['url']} --token DEVICE_TOKEN --job {job_id}" in made.output
    listed = run("job", "list", "--device", "lister", env=env)
    assert listed.exit_code == 0 and f"{job_id}" in listed.output and "pending" in listed.output
    pending = run("job", "list", "--status", "pending", "--json", env=env).stdout.splitlines()
    assert job_id in [json.loads(line)["id"] for line in pending]

    cancelled = run("job", "cancel", str(job_id), "--token", token, env=env)
    assert cancelled.exit_code == 0 and f"job {job_id} cancelled" in cancelled.output
    with HwlutClient(served["url"], token=token) as client:
        assert client.job(job_id)["status"] == "cancelled"
        assert client.claim(job_id, agent="late").items == []  # agents get none of it
    gone = run("job", "list", "--status", "pending", "--json", env=env).stdout.splitlines()
    assert job_id not in [json.loads(line)["id"] for line in gone]

    again = run("job", "cancel", str(job_id), "--token", token, env=env)  # idempotent
    assert again.exit_code == 0
    other = _device(served, "stranger")
    refused = run("job", "cancel", str(job_id), "--token", other, env=env)
    assert refused.exit_code == 2 and "refused this token" in refused.output and "--token" in refused.output
    bad_status = run("job", "list", "--status", "done", env=env)
    assert bad_status.exit_code == 2 and "pending, running, complete, failed, cancelled" in bad_status.output


def test_job_create_refuses_a_runtime_no_agent_runs_at_the_cli_and_at_the_server(served: dict[str, str]) -> None:
    token = _device(served, "typo")
    result = run("job", "create", "--device", "typo", "--runtime", "tflit", "--server", served["url"], "--token", token)
    assert result.exit_code == 2 and "--runtime" in result.output and "tflite" in result.output
    with HwlutClient(served["url"], token=token) as client:
        from lutclient import Invalid

        with pytest.raises(Invalid) as refused:
            client.create_job("typo", resolution=32, runtime="tflit")
        assert refused.value.problems[0]["loc"][-1] == "runtime"
        assert client.list_jobs(device="typo") == []  # nothing was stored


def test_an_imported_partial_table_is_partial_and_its_arch_sum_exits_3(served: dict[str, str], tmp_path: Path) -> None:
    entries = SPACE.distinct_entries()
    some = {e.key: {"median": 10.0} for e in entries[:20]}
    path = tmp_path / "partial.json"
    LatencyTable(space=SPACE, entries=some, complete=True).save(path)  # a file that claims to be complete
    done = run("lut", "import", str(path), "--device", "importer", "--db", served["db"])
    assert done.exit_code == 0, done.output
    assert f"(partial: 20/{len(entries)} entries of fbnet-32, {len(entries) - 20} missing)" in done.output
    job_id = done.output.split("LUT ")[1].split()[0]
    env = {"HWLUT_SERVER": served["url"]}
    shown = run("lut", "show", "--device", "importer", "--job", job_id, env=env)
    assert shown.exit_code == 0 and f"20/{len(entries)} entries (partial)" in shown.output
    arch = SPACE.sample(random.Random(1)).encode()
    summed = run("query", "arch", arch, "--device", "importer", "--job", job_id, env=env)
    assert summed.exit_code == 3, summed.output
    assert "lacks" in summed.output and "so the total is no latency" in summed.output
    as_json = run("query", "arch", arch, "--device", "importer", "--job", job_id, "--json", env=env)
    assert as_json.exit_code == 3 and json.loads(as_json.stdout)["complete"] is False


# -- one error style, one vocabulary ------------------------------------------------------------------
def test_connection_errors_name_the_url_and_the_next_step() -> None:
    port = _free_port()
    result = run("job", "list", "--server", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"cannot reach the hwlut server at http://127.0.0.1:{port}" in result.output
    assert "hwlut serve" in result.output and "HWLUT_SERVER" in result.output


def test_a_server_url_with_a_path_is_corrected_or_refused(served: dict[str, str]) -> None:
    fixed = run("device", "list", "--server", served["url"] + "/v1/devices")
    assert fixed.exit_code == 0 and f"note: using {served['url']}" in fixed.output
    refused = run("device", "list", "--server", served["url"] + "/hwlut")
    assert refused.exit_code == 2 and "has a path" in refused.output and "root URL" in refused.output


def test_a_missing_token_is_a_401_naming_token(served: dict[str, str]) -> None:
    result = run("device", "register", "nobody-asked", "--server", served["url"])
    assert result.exit_code == 2 and "needs a token" in result.output and "--token" in result.output


def test_debug_shows_the_traceback(served: dict[str, str]) -> None:
    port = _free_port()
    quiet = run("job", "show", "1", "--server", f"http://127.0.0.1:{port}")
    loud = run("--debug", "job", "show", "1", "--server", f"http://127.0.0.1:{port}")
    assert quiet.exception is None or isinstance(quiet.exception, SystemExit)
    assert loud.exception is not None and type(loud.exception).__name__ == "ServerUnreachable"


def _commands() -> list[list[str]]:
    """Every command's words (``["job", "create"]``...)."""
    import typer

    found: list[list[str]] = []

    def walk(command: Any, words: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*words, name])
        else:
            found.append(words)

    walk(typer.main.get_command(app), [])
    return found


def test_version_and_help_that_teaches() -> None:
    from hwlut import __version__

    assert run("--version").output.strip() == f"hwlut {__version__}"
    commands = _commands()
    assert len(commands) >= 30 and ["job", "cancel"] in commands and ["config", "set"] in commands
    for args in commands:  # every command's help: no Python type names, no reStructuredText
        text = run(*args, "--help").output
        assert "<bool>" not in text and "<list[" not in text and "<str>" not in text, args
        assert "``" not in text and ":class:" not in text, args
    for args in (["job", "create"], ["job", "list"], ["profile"], ["lut", "export"], ["query", "arch"], ["agent"]):
        assert "Example" in run(*args, "--help").output, args
    assert "ort, tflite, adb" in run("profile", "--help").output
    assert "warm, cold, l2" in run("job", "create", "--help").output
    assert "disable, basic, extended, all" in run("profile", "--help").output
    assert "hwlut, csv, hwnasbench, proxyless, ofa" in run("lut", "get", "--help").output


def test_the_lut_format_list_is_the_stores() -> None:
    from hwlut.cli.job import JOB_STATUSES
    from hwlut.cli.options import LUT_FORMATS
    from lut_store import crud
    from lut_store.formats import FORMATS

    assert LUT_FORMATS == FORMATS and JOB_STATUSES == crud.JOB_STATUSES


# -- the commands people look for ---------------------------------------------------------------------
def test_device_token_and_rm_with_confirmation(served: dict[str, str]) -> None:
    env = {"HWLUT_SERVER": served["url"], "HWLUT_ADMIN_TOKEN": ADMIN}
    first = _device(served, "spare")
    fresh = run("device", "token", "spare", env=env)
    assert fresh.exit_code == 0, fresh.output
    second = next(line for line in fresh.output.splitlines() if line.startswith("hwlut_"))
    assert second != first
    with HwlutClient(served["url"], token=second) as client:
        assert client.whoami()["device"] == "spare"
    unasked = run("device", "rm", "spare", env=env)
    assert unasked.exit_code == 2 and "--yes" in unasked.output
    assert "spare" in run("device", "list", env=env).output
    gone = run("device", "rm", "spare", "--yes", env=env)
    assert gone.exit_code == 0 and "device spare deleted" in gone.output


def test_config_file_holds_server_and_token_0600_and_the_environment_wins(
    served: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "conf" / "config.json"
    env = {"HWLUT_CLIENT_CONFIG": str(config)}
    assert run("config", "set", "server", served["url"], env=env).exit_code == 0
    assert run("config", "set", "token", ADMIN, env=env).exit_code == 0
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"server": served["url"], "token": ADMIN}
    made = run("device", "register", "configured", env=env)  # no --server, no --token
    assert made.exit_code == 0, made.output
    away = run("device", "list", env={**env, "HWLUT_SERVER": f"http://127.0.0.1:{_free_port()}"})
    assert away.exit_code == 1  # the environment wins over the file
    wrong = run("config", "set", "colour", "blue", env=env)
    assert wrong.exit_code == 2 and "server, token" in wrong.output
    assert run("config", "unset", "token", env=env).exit_code == 0
    assert "token" not in json.loads(config.read_text())


def test_query_entry_table_json_and_lut_get_to_stdout(served: dict[str, str], tmp_path: Path) -> None:
    entries = SPACE.distinct_entries()
    path = tmp_path / "whole.json"
    LatencyTable(space=SPACE, entries={e.key: {"median": 1000.0} for e in entries}, complete=True).save(path)
    assert run("lut", "import", str(path), "--device", "whole", "--db", served["db"]).exit_code == 0
    env = {"HWLUT_SERVER": served["url"]}
    key = entries[0].key
    table = run("query", "entry", key, "--device", "whole", env=env)
    assert table.exit_code == 0 and f"{key}: 1.000 ms" in table.output
    as_json = run("query", "entry", key, "--device", "whole", "--json", env=env)
    assert json.loads(as_json.stdout)["latency_us"] == 1000.0
    arch = SPACE.sample(random.Random(1)).encode()
    summed = run("query", "arch", arch, "--device", "whole", env=env)
    assert summed.exit_code == 0 and "total" in summed.output and "stem" in summed.output
    got = run("lut", "get", "--device", "whole", "--out", "-", env=env)
    assert got.exit_code == 0 and LatencyTable.from_dict(json.loads(got.stdout)).complete
    exported = run("lut", "export", "--device", "whole", "--db", served["db"], "--format", "csv", "--out", "-")
    assert exported.exit_code == 0 and exported.stdout.startswith("key,")


# -- the table of user mistakes: real processes, no traceback ----------------------------------------------
def _mistakes(tmp: Path, dead: str) -> list[tuple[list[str], int, str]]:
    binary = tmp / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    measured = tmp / "tflite.json"  # a LUT file measured with LiteRT
    LatencyTable(space=SPACE, entries={}, provenance={"runtime": {"runtime": "tflite", "threads": 1}}).save(measured)
    return [
        (["profile", "--runtime", "ort", "-r", "32", "--limit", "1", "--out", str(measured)], 2,
         "was measured with runtime.runtime 'tflite'; this command asks for 'ort'. To continue it, drop or change "
         "--runtime; or give another --out, or add --restart"),
        (["job", "create", "--device", "d", "--runtime", "tflit", "--server", dead], 2, "--runtime"),
        (["profile", "--optimization", "max", "-r", "32", "--limit", "1", "--out", str(tmp / "p.json")], 2,
         "--optimization"),
        (["profile", "--runtime", "onnx-rt", "-r", "32"], 2, "--runtime"),
        (["lut", "import", str(binary), "--device", "d", "--db", f"sqlite:///{tmp / 'a.db'}"], 2, "not a text file"),
        (["lut", "export", "--device", "d", "--out", "x.json", "--db", f"sqlite:///{tmp / 'empty.db'}"], 2,
         "hwlut db upgrade"),
        (["lut", "show", str(tmp / "nowhere.json")], 2, "does not exist"),
        (["query", "arch", "k3_e1", "--device", "d", "--server", dead], 1, "cannot reach"),
        (["lut", "get", "--device", "d", "--out", "-", "--server", dead], 1, "hwlut serve"),
        (["device", "list", "--server", "ftp://example.org"], 2, "no http(s) URL"),
        (["job", "list", "--server", dead + "/somewhere"], 2, "has a path"),
        (["export", "k3", "--format", "tflit"], 2, "--format"),
    ]  # fmt: skip


def test_no_user_mistake_prints_a_traceback(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    kept = ("HWLUT_HOME", "HWLUT_CLIENT_CONFIG")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWLUT_") or k in kept}
    env["COLUMNS"] = "200"
    code = "import sys; from hwlut.cli import main; sys.argv[0] = 'hwlut'; main()"
    cases = _mistakes(tmp_path, dead)
    procs = [  # started together: each is mostly its imports
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for args, _, _ in cases
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    for proc, (out, err), (args, exit_code, says) in zip(procs, outputs, cases, strict=True):
        shown = out + err
        assert "Traceback" not in shown, (args, shown[-2000:])
        assert proc.returncode == exit_code, (args, proc.returncode, shown[-2000:])
        assert says in shown, (args, shown[-2000:])
    assert not (tmp_path / "p.json").exists()  # refused before exporting: no 0-entry file left behind


def test_cancel_and_find_jobs_in_the_store(store: Store) -> None:
    """``crud.cancel_job`` and ``crud.find_jobs`` on SQLite and PostgreSQL: a cancelled job stays so, findable."""
    from lut_store import crud
    from lut_store.crud.jobs import refresh_status
    from lut_store.formats import Table
    from lut_store.models import utcnow

    with store.transaction(write=True) as session:
        dev, _ = crud.create_device(session=session, name="box")
        job_id = crud.create_job(session=session, device=dev, spec=SPACE, settings={"runtime": "ort"}).id
        imported = crud.import_table(session=session, device=dev, table=Table("hwlut", [], space=SPACE)).id
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        crud.cancel_job(session=session, job=job, now=utcnow())
        refresh_status(session=session, job=job, now=utcnow())  # what an upload does: it stays cancelled
        with pytest.raises(crud.Conflict):
            crud.cancel_job(session=session, job=crud.get_job(session=session, job_id=imported), now=utcnow())
    with store.transaction() as session:
        assert [j.id for j in crud.find_jobs(session=session, status="cancelled")] == [job_id]
        assert crud.find_jobs(session=session, status="pending") == []
        assert [j.id for j in crud.find_jobs(session=session, device=dev, limit=1)] == [imported]
        with pytest.raises(crud.Invalid):
            crud.find_jobs(session=session, status="done")
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        assert crud.claim_items(session=session, job=job, agent="a", max_items=5).items == []


def test_lut_files_are_written_with_the_users_umask(tmp_path: Path) -> None:
    table = LatencyTable(space=SPACE, entries={})
    old = os.umask(0o022)
    try:
        table.save(tmp_path / "a.json")
        os.umask(0o027)
        table.save(tmp_path / "b.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o640


def _profile_bar() -> tuple[Any, Any]:
    """``hwlut profile``'s progress hooks on an 80-column console, and a function that renders what it shows."""
    from rich.console import Console

    from hwlut.cli.profile import _progress, _RichHooks

    console = Console(width=80, record=True, force_terminal=False, color_system=None)
    progress = _progress(console)

    def shown() -> str:
        console.print(progress.get_renderable())
        return console.export_text()

    return _RichHooks(progress), shown


def test_the_profile_bar_counts_finished_entries_and_fits_80_columns() -> None:
    from types import SimpleNamespace

    hooks, shown = _profile_bar()
    assert "None" not in shown()  # before the total is known: no "0/None entries"
    hooks.start(112, 5)
    hooks.measuring(1, 2, 60)
    report = SimpleNamespace(accepted=True, flagged=False, index=2, active=40, drift=0.004, finished=(1, 2))
    hooks.passed(report, 7.6, 112)  # 7.6: finished entries plus shares of unfinished ones
    text = shown()
    assert "7/112 entries" in text and "pass 3, 40 active" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_the_profile_bar_counts_finished_artifacts() -> None:
    """``hwlut profile``'s export line: ``5/16 artifacts`` as they finish, within 80 columns, gone once all are in."""
    hooks, shown = _profile_bar()
    hooks.start(14, 0)
    hooks.exported(0, 16)
    assert "0/16 artifacts" in shown()
    hooks.exported(5, 16)
    text = shown()
    assert "5/16 artifacts" in text and "0/14 entries" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    hooks.exported(16, 16)
    assert "artifacts" not in shown()


def test_ctrl_c_while_waiting_for_a_server_is_exit_130_without_a_traceback() -> None:
    import signal

    with socket.socket() as listener:  # a server that takes the connection and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(60)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        code = "import sys; from hwlut.cli import main; sys.argv[0] = 'hwlut'; main()"
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "job", "list", "--server", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        conn, _ = listener.accept()  # the command is waiting for its answer now
        with conn:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted" and "Traceback" not in out + err


def test_an_unexpected_error_is_one_line_pointing_at_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    from hwlut.cli import job
    from hwlut.cli.errors import message_of
    from searchspace import ArchitectureError

    def broken(*_args: Any, **_kw: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(job, "connect", broken)
    quiet = run("job", "list")
    assert quiet.exit_code == 1 and "error: unexpected RuntimeError: boom" in quiet.output
    assert "--debug" in quiet.output and "HWLUT_DEBUG=1" in quiet.output
    loud = run("job", "list", env={"HWLUT_DEBUG": "1"})
    assert isinstance(loud.exception, RuntimeError)
    assert message_of(ArchitectureError("not an architecture of fbnet")) == ("not an architecture of fbnet", 2)
    assert message_of(ValueError("a bug")) is None  # a plain ValueError is no refusal: unexpected


def test_a_failed_profile_start_leaves_no_empty_file_but_keeps_measured_ones(tmp_path: Path) -> None:
    from hwlut.cli.profile import _drop_if_empty

    empty, measured = tmp_path / "empty.json", tmp_path / "measured.json"
    LatencyTable(space=SPACE, entries={}).save(empty)
    LatencyTable(space=SPACE, entries={SPACE.distinct_entries()[0].key: {"median": 1.0}}).save(measured)
    assert not _drop_if_empty(empty, existed=True) and empty.exists()  # the user's file: kept
    assert _drop_if_empty(empty, existed=False) and not empty.exists()  # made by this run, nothing in it
    assert not _drop_if_empty(measured, existed=False) and measured.exists()
