"""A job's settings as one typed value (searchspace.jobs.JobSettings): checks, stored form, its readers."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from typer.testing import CliRunner

from lut_store import Store, crud
from lut_store.models import Job, WorkItem
from searchspace import JobSettings, fbnet_space
from searchspace.fields import FieldError
from searchspace.jobs import (
    CACHE_MODES,
    DEFAULT_CACHE_MODES,
    OPTIMIZATION_LEVELS,
    PROTOCOL_FIELDS,
    RUNTIME_ALIASES,
    canonical_runtime,
    default_cache_mode,
)

#: Stored forms (``to_dict``), each read back to an equal value and written out the same.
STORED = [
    {"runtime": "onnxruntime", "threads": None, "options": {}},
    {"runtime": "ort", "threads": 1, "options": {"optimization": "basic", "cache_mode": "warm"}},
    {"runtime": "tflite", "threads": 4, "options": {"xnnpack": False, "cache_mode": "l2"}},
    {"runtime": "LiteRT", "threads": 1, "options": {"protocol": {"time_cap_s": 2.0, "min_passes": 2}}},
    {"runtime": "adb", "threads": 1, "options": {"xnnpack": True, "cache_mode": "warm"}},
    {  # quickstart's --quick job
        "runtime": "ort",
        "threads": 1,
        "options": {
            "protocol": {
                "target_rel_ci": 0.03,
                "time_cap_s": 0.25,
                "warmup_s": 0.2,
                "slice_s": 0.02,
                "sentinel_slice_s": 0.01,
                "min_passes": 2,
            },
            "cache_mode": "warm",
        },
    },
]

#: A request's settings that no agent could use, and the field each refusal names.
BAD: list[tuple[dict[str, Any], str]] = [
    ({"runtime": "tflit"}, "runtime"),
    ({"runtime": "coreml"}, "runtime"),
    ({"runtime": ""}, "runtime"),
    ({"runtime": 3}, "runtime"),
    ({"threads": 0}, "threads"),
    ({"threads": True}, "threads"),
    ({"threads": 1.5}, "threads"),
    ({"options": []}, "options"),
    ({"options": {"cache_mode": "tepid"}}, "options.cache_mode"),
    ({"options": {"cache-mode": "l2"}}, "options.cache-mode"),
    ({"options": {"entries": ["k"]}}, "options.entries"),  # the store writes a job's entries itself
    ({"options": {"validation": []}}, "options.validation"),
    ({"options": {"optimization": "max"}}, "options.optimization"),
    ({"runtime": "tflite", "options": {"optimization": "all"}}, "options.optimization"),
    ({"runtime": "ort", "options": {"xnnpack": True}}, "options.xnnpack"),
    ({"runtime": "tflite", "options": {"xnnpack": "yes"}}, "options.xnnpack"),
    ({"options": {"protocol": {"time_cap_s": 0}}}, "options.protocol.time_cap_s"),
    ({"options": {"protocol": {"time_cap_s": "3"}}}, "options.protocol.time_cap_s"),
    ({"options": {"protocol": {"target_rel_ci": -0.01}}}, "options.protocol.target_rel_ci"),
    ({"options": {"protocol": {"confidence": 1.0}}}, "options.protocol.confidence"),
    ({"options": {"protocol": {"min_runs_per_pass": 0}}}, "options.protocol.min_runs_per_pass"),
    ({"options": {"protocol": {"warmup_runs": 2.5}}}, "options.protocol.warmup_runs"),
    ({"options": {"protocol": {"normalize": 1}}}, "options.protocol.normalize"),
    ({"options": {"protocol": {"precision": 0.01}}}, "options.protocol.precision"),
    ({"options": {"protocol": [1]}}, "options.protocol"),
]


@pytest.mark.parametrize("doc", STORED, ids=lambda d: f"{d['runtime']}-{sorted(d['options'])}")
def test_the_stored_form_round_trips(doc: dict[str, Any]) -> None:
    settings = JobSettings.from_dict(doc)
    assert settings.to_dict() == doc
    assert JobSettings.from_dict(settings.to_dict()) == settings
    assert dataclasses.replace(settings) == settings  # frozen, checked again when copied


def test_a_stored_job_record_reads_with_the_store_s_own_keys_passed_over() -> None:
    """A job as the server shows it: ``entries`` and ``validation`` are its work; an older server's extras pass."""
    record = {
        "id": 4,
        "status": "pending",
        "runtime": "ort",
        "threads": 1,
        "options": {"cache_mode": "warm", "entries": ["k"], "validation": [{"n": 2}], "xnnpack": True, "note": 1},
    }
    with pytest.raises(FieldError) as caught:
        JobSettings.from_dict(record)
    assert caught.value.where == "options.entries"
    settings = JobSettings.from_dict(record, strict=False)
    assert settings == JobSettings("ort", 1, cache_mode="warm")  # ort has no XNNPACK: older servers stored it anyway
    assert settings.runtime_name == "ort" and settings.measured_cache_mode == "warm"
    assert JobSettings.from_dict({"runtime": "tflite"}).measured_cache_mode == "warm"  # made before cache modes


@pytest.mark.parametrize(("doc", "where"), BAD, ids=[f"{w}={d}" for d, w in BAD])
def test_a_bad_setting_is_refused_naming_it(doc: dict[str, Any], where: str) -> None:
    with pytest.raises(FieldError) as caught:
        JobSettings.from_dict(doc)
    assert caught.value.where == where


def test_the_settings_are_immutable() -> None:
    settings = JobSettings("ort", protocol={"time_cap_s": 1.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.threads = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.protocol["time_cap_s"] = 2.0  # type: ignore[index]
    assert hash(settings) == hash(JobSettings("ort", protocol={"time_cap_s": 3.0}))  # the protocol is not hashed


def test_the_names_agree_with_the_runtimes_and_the_protocol() -> None:
    """The pure data in searchspace.jobs is what profiler's runtimes and protocol accept."""
    from profiler import runtimes
    from profiler.protocol import ProtocolConfig
    from profiler.runtimes import coldcache

    assert RUNTIME_ALIASES == runtimes.RUNTIME_ALIASES and set(RUNTIME_ALIASES.values()) == set(runtimes.RUNTIMES)
    assert CACHE_MODES == coldcache.CACHE_MODES and DEFAULT_CACHE_MODES == coldcache.DEFAULT_CACHE_MODES
    for name in ("ONNXRuntime", "litert", "android", "coreml", "tflit"):
        assert canonical_runtime(name) == runtimes.canonical_runtime(name)
    for name in ("ort", "onnxruntime", "tflite", "adb"):
        assert default_cache_mode(name) == runtimes.default_cache_mode(name)
    fields = {f.name: f.default for f in dataclasses.fields(ProtocolConfig)}
    assert list(PROTOCOL_FIELDS) == list(fields)
    for name, default in fields.items():
        assert PROTOCOL_FIELDS[name](default) is None, name  # every default passes the job's check
    assert OPTIMIZATION_LEVELS == ("disable", "basic", "extended", "all")
    for level in OPTIMIZATION_LEVELS:
        assert runtimes.OrtRuntime(optimization=level).settings()["optimization"] == level


@pytest.mark.parametrize(
    ("protocol", "accepted"),
    [
        ({"time_cap_s": 0}, False),
        ({"target_rel_ci": 0}, False),
        ({"confidence": 0}, False),
        ({"min_runs_per_pass": 0}, False),
        ({"warmup_runs": -1}, False),
        ({"sentinel_threshold": 0}, False),
        ({"slice_s": 0, "warmup_s": 0, "min_passes": 0, "max_redo": 0}, True),
        ({"time_cap_s": 1, "seed": -3, "normalize": True}, True),
    ],
)
def test_the_jobs_protocol_check_is_the_protocols(protocol: dict[str, Any], accepted: bool) -> None:
    """What a job may set is what :class:`ProtocolConfig` accepts, edge by edge."""
    from profiler.protocol import ProtocolConfig

    try:
        ProtocolConfig(**protocol)
        config_ok = True
    except ValueError:
        config_ok = False
    try:
        JobSettings(protocol=protocol)
        job_ok = True
    except FieldError:
        job_ok = False
    assert config_ok == job_ok == accepted


# -- the store ------------------------------------------------------------------------------
def test_the_store_refuses_a_bad_setting_naming_it_and_writes_nothing(store: Store) -> None:
    with store.transaction(write=True) as session:
        device, _ = crud.create_device(session=session, name="dev")
        for doc, where in BAD:
            with pytest.raises(crud.Invalid) as caught:
                crud.create_job(session=session, device=device, spec=fbnet_space(32), settings=doc)
            assert caught.value.field == where
        assert session.query(Job).count() == 0 and session.query(WorkItem).count() == 0


def test_the_store_keeps_the_settings_in_their_stored_form(store: Store) -> None:
    with store.transaction(write=True) as session:
        device, _ = crud.create_device(session=session, name="dev")
        for doc in STORED:
            job = crud.create_job(session=session, device=device, spec=fbnet_space(32), settings=doc)
            assert {"runtime": job.runtime, "threads": job.threads, "options": job.options} == doc
        typed = JobSettings("tflite", 2, protocol={"time_cap_s": 1.0}, cache_mode="l2")
        entries = [e.key for e in fbnet_space(32).distinct_entries()[:2]]
        job = crud.create_job(session=session, device=device, spec=fbnet_space(32), settings=typed, entries=entries)
        assert job.options == {**typed.options(), "entries": entries}
        assert (
            JobSettings.from_dict(
                {"runtime": job.runtime, "threads": job.threads, "options": job.options}, strict=False
            )
            == typed
        )


# -- the CLI and the agent --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--runtime", "tflit"], "--runtime"),
        (["--cache-mode", "tepid"], "--cache-mode"),
        (["--runtime", "ort", "--xnnpack"], "--xnnpack"),
        (["--runtime", "tflite", "--optimization", "all"], "--optimization"),
        (["--precision", "0"], "--precision"),
    ],
)
def test_job_create_refuses_a_bad_setting_before_asking_the_server(args: list[str], flag: str) -> None:
    from hwlut.cli import app

    result = CliRunner().invoke(app, ["job", "create", "--device", "d", "--server", "http://127.0.0.1:9", *args])
    assert result.exit_code == 2, result.output
    assert flag in result.output


def test_the_agent_reads_a_job_through_its_settings() -> None:
    from profiler.agent import AgentConfig, SettingsMismatch, job_protocol, runtime_for_job
    from profiler.agent.config import job_settings

    job = {"id": 3, "runtime": "onnxruntime", "threads": 2, "options": {"protocol": {"time_cap_s": 0.5}, "entries": []}}
    assert job_settings(job) == JobSettings("onnxruntime", 2, protocol={"time_cap_s": 0.5})
    assert job_protocol(job).time_cap_s == 0.5
    assert runtime_for_job(job, AgentConfig(server="http://x", token="t")).settings()["threads"] == 2
    bad = {**job, "options": {"protocol": {"time_cap_s": -1}}}
    with pytest.raises(SettingsMismatch, match=r"options\.protocol\.time_cap_s"):
        runtime_for_job(bad, AgentConfig(server="http://x", token="t"))
    with pytest.raises(SettingsMismatch, match=r"options\.protocol\.time_cap_s"):
        job_protocol(bad)
