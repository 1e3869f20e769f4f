"""Few-shot LUTs (searchspace.fewshot): constructed devices, uncertainty, active selection, the CLI."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from searchspace import LatencyTable, fbnet_space
from searchspace.fewshot import Basis, choose, compare, entry_features, fit_fewshot, most_similar
from searchspace.fewshot_lut import fewshot_table
from searchspace.fit import Design

SPACE = fbnet_space(32)


@pytest.fixture(scope="module")
def design() -> Design:
    return Design.of(SPACE)


@pytest.fixture(scope="module")
def known(design: Design) -> dict[str, np.ndarray]:
    """Four known devices: each a different mix of compute, memory and launch costs, with per-entry noise."""
    feats = np.array([entry_features(e) for e in design.entries])
    feats = feats / feats.mean(axis=0)
    rng = np.random.default_rng(0)
    out = {}
    for n in range(4):
        mix = rng.uniform(0.1, 1.0, feats.shape[1])
        out[f"dev{n}"] = 100.0 * feats @ mix * rng.lognormal(0.0, 0.1, len(design.entries))
    return out


@pytest.fixture(scope="module")
def pool(design: Design) -> tuple[list[str], np.ndarray]:
    rng = random.Random(1)
    archs = [SPACE.sample(rng).encode() for _ in range(600)]
    return archs, design.matrix(archs)


def _new_device(design: Design, known: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """A scaled copy of dev0 plus a memory-bound term of its own and 5% per-entry noise."""
    rng = np.random.default_rng(seed)
    acts = np.array([entry_features(e)[2] for e in design.entries])
    return (2.5 * known["dev0"] + 150.0 * acts / acts.mean()) * rng.lognormal(0.0, 0.05, len(design.entries))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fewshot_beats_the_most_similar_device_rescaled(design, known, pool, seed: int) -> None:
    _archs, a = pool
    truth = a @ _new_device(design, known, seed)
    basis = Basis.of(design, known)
    idx = np.random.default_rng(seed).choice(len(truth), 10, replace=False)
    rest = np.setdiff1d(np.arange(len(truth)), idx)
    model = fit_fewshot(basis, "networks", a[idx], truth[idx])
    name, rescaled = most_similar({n: a @ x for n, x in known.items()}, truth[idx], idx)
    result = compare(model.network_latency(a[rest]), (name, rescaled[rest]), truth[rest])
    assert result["beats_baseline"], result["verdict"]
    assert result["verdict"].startswith(f"few-shot beats the most similar device ({name}), rescaled")
    assert result["fewshot"]["spearman"] > 0.97


def test_a_pure_scaled_copy_is_found(design, known, pool) -> None:
    """A device that IS another one rescaled: few-shot is as good as the baseline (which is then the truth)."""
    _archs, a = pool
    truth = a @ (3.0 * known["dev2"])
    idx = np.arange(10)
    model = fit_fewshot(Basis.of(design, known), "networks", a[idx], truth[idx])
    rest = np.arange(10, len(truth))
    pred = model.network_latency(a[rest])
    assert np.max(np.abs(pred / truth[rest] - 1)) < 0.02
    assert model.summary()["weights"]["lut:dev2"] > 0


def test_uncertainty_shrinks_with_measurements_and_active_selection_is_d_optimal(design, known, pool) -> None:
    _archs, a = pool
    truth = a @ _new_device(design, known, 7)
    basis = Basis.of(design, known)
    few, many = (fit_fewshot(basis, "networks", a[:k], truth[:k]) for k in (6, 60))
    assert few.entry_std().mean() > many.entry_std().mean() > 0
    picked = choose(basis, "networks", 10, pool=a, ridge=1e-3)
    assert len(set(picked)) == 10

    def logdet(rows: list[int]) -> float:
        x = basis.network_columns(a[rows])
        x = x / x.sum(axis=1, keepdims=True)
        return float(np.linalg.slogdet(x.T @ x + 1e-3 * np.eye(x.shape[1]))[1])

    rng = np.random.default_rng(0)
    assert all(logdet(picked) > logdet(list(rng.choice(len(a), 10, replace=False))) for _ in range(5))


def test_entry_mode_keeps_measured_entries_and_marks_the_rest(design, known) -> None:
    truth = _new_device(design, known, 4)
    basis = Basis.of(design, known)
    picked = choose(basis, "entries", 20)
    measured = {design.keys[i]: float(truth[i]) for i in picked}
    table, model = fewshot_table(basis, "entries", measured)
    sources = {k: v["source"] for k, v in table.entries.items()}
    assert sorted(k for k, s in sources.items() if s == "measured") == sorted(measured)
    assert all(table.entries[k]["median"] == measured[k] for k in measured)
    predicted = [i for i, k in enumerate(design.keys) if sources[k] == "predicted"]
    assert len(predicted) == len(design.keys) - 20
    # every predicted entry carries an uncertainty (0 only where every basis column is 0: an identity skip)
    assert all(table.entries[design.keys[i]]["std"] > 0 for i in predicted if truth[i] > 0)
    nonzero = [i for i in predicted if truth[i] > 0]
    err = np.abs(model.entry_latency()[nonzero] / truth[nonzero] - 1)
    assert np.median(err) < 0.10
    assert table.provenance["fewshot"]["held_out"]["n"] == 20


def test_cli_choose_then_predict(tmp_path: Path, design, known) -> None:
    from hwlut.cli import app

    files = []
    for name, lut in known.items():
        path = tmp_path / f"{name}.json"
        entries = {k: {"median": float(v)} for k, v in zip(design.keys, lut, strict=True)}
        LatencyTable(space=SPACE, entries=entries, complete=True).save(path)
        files += ["--basis", str(path)]
    runner = CliRunner()
    chosen = tmp_path / "chosen.csv"
    done = runner.invoke(app, ["lut", "fewshot", "choose", *files, "--k", "12", "--pool", "300", "--out", str(chosen)])
    assert done.exit_code == 0, done.output
    with chosen.open(newline="") as fh:
        archs = [r["arch"] for r in csv.DictReader(fh)]
    assert len(archs) == 12
    truth = _new_device(design, known, 9)
    measured = tmp_path / "measured.csv"
    rows = [f'"{arch}",{float(design.matrix([arch])[0] @ truth)}\n' for arch in archs]
    measured.write_text("arch,latency_us\n" + "".join(rows))
    out = tmp_path / "new.json"
    done = runner.invoke(app, ["lut", "fewshot", "predict", *files, "--measured", str(measured), "--out", str(out)])
    assert done.exit_code == 0, done.output
    doc = json.loads(out.read_text())
    assert doc["provenance"]["method"] == "few-shot from 12 measured networks"
    assert {v["source"] for v in doc["entries"].values()} == {"predicted"}
    assert doc["provenance"]["fewshot"]["held_out"]["mape"] < 10
    measured.write_text("arch,latency_us\n" + f'"{archs[0]}",nan\n')
    bad = runner.invoke(app, ["lut", "fewshot", "predict", *files, "--measured", str(measured), "--out", str(out)])
    assert bad.exit_code == 2 and "row 1" in bad.output


def _measure_all(session, job, truth: dict[str, float], runtime: str = "ort") -> None:
    """Play the agent: claim every item of ``job`` and upload ``truth``'s latency for each (µs)."""
    from lut_store import crud

    lease = crud.claim_items(session=session, job=job, agent="a", max_items=500)
    results = [{"item_id": i.id, "stats": {"median": truth[i.key]}} for i in lease.items]
    provenance = {"runtime": {"runtime": runtime, "threads": 1}}
    crud.upload_results(session=session, job=job, lease_id=lease.lease_id, results=results, provenance=provenance)


def test_store_fewshot_job_predicts_the_rest_and_counts_earlier_measurements(store, design, known) -> None:
    """crud.fewshot on SQLite and PostgreSQL: K chosen entries measured, the rest predicted, more measured later."""
    from lut_store import crud
    from lut_store.crud.fewshot import create_fewshot_job
    from lut_store.formats import Table, TableRow
    from searchspace import JobSettings, parse_key

    truth_vec = _new_device(design, known, 11)
    truth = {key: float(v) for key, v in zip(design.keys, truth_vec, strict=True)}
    with store.transaction(write=True) as session:
        for name, lut in known.items():
            dev, _ = crud.create_device(session=session, name=name)
            rows = [
                TableRow(k, parse_key(k), float(v), {"median": float(v)}) for k, v in zip(design.keys, lut, strict=True)
            ]
            crud.import_table(session=session, device=dev, table=Table("hwlut", rows, space=SPACE), space=SPACE)
        fitted, _ = crud.create_device(session=session, name="fitted-phone")  # gauge-relative entries: no basis
        rows = [TableRow(k, parse_key(k), 1.0, {"median": 1.0}) for k in design.keys]
        table = Table("hwlut", rows, space=SPACE, provenance={"fit": {"gauge": "min0-fixed-macs"}})
        crud.import_table(session=session, device=fitted, table=table, space=SPACE)
        box, _ = crud.create_device(session=session, name="box")
        job = create_fewshot_job(
            session=session, device=box, spec=SPACE, settings=JobSettings(runtime="onnxruntime", threads=1), k=6
        )
        assert {b["device"] for b in job.options["fewshot"]["basis"]} == set(known)
        first = list(job.options["entries"])
        assert len(first) == 6 and crud.job_progress(session=session, job=job)["total"] == 6
        _measure_all(session, job, truth)
        assert job.status == "complete"
        latest = crud.resolve_lut(session=session, device="box", ref="latest")
        assert latest.kind == "fewshot" and latest.id != job.id
        snap = crud.lut_snapshot(session=session, job=latest)
        stats = {r.key: r.stats for r in snap.rows}
        assert len(stats) == len(design.keys)
        assert sorted(k for k, s in stats.items() if s["source"] == "measured") == sorted(first)
        # a later job with the alias "ort" chooses entries not measured yet, and its LUT counts all 10
        more = create_fewshot_job(
            session=session, device=box, spec=SPACE, settings=JobSettings(runtime="ort", threads=1), k=4
        )
        assert not set(more.options["entries"]) & set(first)
        _measure_all(session, more, truth)
        snap = crud.lut_snapshot(session=session, job=crud.resolve_lut(session=session, device="box", ref="latest"))
        measured = {r.key for r in snap.rows if r.stats["source"] == "measured"}
        assert measured == set(first) | set(more.options["entries"])
        assert snap.provenance["method"] == "few-shot from 10 measured entries"
        predicted = [r for r in snap.rows if r.stats["source"] == "predicted" and truth[r.key] > 0]
        err = [abs(r.latency_us / truth[r.key] - 1) for r in predicted]
        assert np.median(err) < 0.15  # the constructed device is a basis device rescaled plus its own memory term
        with pytest.raises(crud.Invalid, match="few_shot_basis"):
            create_fewshot_job(session=session, device=box, spec=SPACE, settings=JobSettings(), k=2, basis=["box"])
