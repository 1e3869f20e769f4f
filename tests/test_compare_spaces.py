"""Comparing LUTs across spaces: a LUT of this machine against the published Pixel 1 / Note10 tables.

``hwlut plot compare`` (files: hwlut JSON, or a ProxylessNAS / OFA YAML with
``--space``) and the dashboard's compare page pair the entries both LUTs hold
and count the unmatched (issue 18 over issue 16's figures).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_server import ADMIN, add_device, bearer, full_fingerprint, make_client
from testdata import REFERENCE_LUTS
from typer.testing import CliRunner

from hwlut.cli import app
from lut_store import Store
from searchspace import LatencyTable, SpaceSpec, load_space
from searchspace.figures import compare
from searchspace.reference import load_table, reference_latencies

PIXEL1 = REFERENCE_LUTS / "proxylessnas_mobile_trim.yaml"
NOTE10 = REFERENCE_LUTS / "ofa_note10_224.yaml"


def _said(output: str) -> str:
    """The output's words, out of Rich's box (which wraps lines)."""
    return " ".join(output.replace("│", " ").split())


def _lut(space: SpaceSpec, factor: float, keep: int | None = None) -> LatencyTable:
    """A LUT of ``space`` priced from the Pixel 1 table × ``factor`` (its first ``keep`` shared entries only)."""
    pixel1 = load_table(PIXEL1, load_space("proxylessnas-mobile")).entries
    shared = [e.key for e in space.distinct_entries() if e.key in pixel1]
    entries = {key: {"median": pixel1[key]["median"] * factor} for key in shared[:keep]}
    provenance = {"runtime": {"runtime": "onnxruntime", "threads": 1}}
    return LatencyTable(space, entries, {"name": "here"}, provenance, None, keep is None)


def _variant(name: str, *, last_channels: int = 320) -> SpaceSpec:
    """proxylessnas-mobile with two candidates per layer (and another last stage): another spec, shared entries."""
    doc = load_space("proxylessnas-mobile").to_dict()
    doc.update(name=name, candidates=["k3_e3", "k5_e6", "zero"])
    doc["stages"][-1]["channels"] = last_channels
    return SpaceSpec.from_dict(doc)


def test_plot_compare_a_small_lut_against_the_pixel1_yaml(tmp_path: Path) -> None:
    space = load_space("proxylessnas-mobile")
    total = len(reference_latencies(PIXEL1.read_text()))
    here = _lut(space, 2.0, keep=20)
    here.save(tmp_path / "here.json")
    runner = CliRunner()
    out = tmp_path / "c.png"
    args = ["plot", "compare", str(tmp_path / "here.json"), str(PIXEL1), "--space", "proxylessnas-mobile"]
    r = runner.invoke(app, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 10_000
    assert f"20 entries matched, {total - 20} unmatched (0 only in A, {total - 20} only in B)" in r.stderr
    assert "rank correlation over them ρ 1.000" in r.stderr  # B is A / 2: the same order
    assert "warning: measured differently: runtime.runtime: 'onnxruntime' != None" in r.stderr

    cmp = compare(here, load_table(PIXEL1, space))
    assert cmp.same_space and cmp.geomean_ratio == pytest.approx(0.5)
    filled = [r for row in cmp.ratio for r in row if r is not None]
    assert filled and all(r == pytest.approx(0.5) for r in filled)

    # a YAML table names no space: the command asks for one; two spaces with nothing in common are refused
    r = runner.invoke(app, ["plot", "compare", str(tmp_path / "here.json"), str(PIXEL1), "--out", str(out)])
    assert r.exit_code == 2 and "--space" in _said(r.output)
    spaces = ["--space", "ofa-mbv3", "--space", "proxylessnas-mobile"]
    r = runner.invoke(app, ["plot", "compare", str(NOTE10), str(PIXEL1), *spaces, "--out", str(out)])
    assert r.exit_code == 2 and "share no entry" in _said(r.output)
    r = runner.invoke(app, ["plot", "compare", str(NOTE10), str(PIXEL1), "--space", "ofa-mbv3", "--out", str(out)])
    assert r.exit_code == 2 and "outside the space" in _said(r.output)  # Pixel 1's keys are no OFA entries


def test_compare_across_spaces_matches_entries_on_as_layers(tmp_path: Path) -> None:
    pixel1 = load_table(PIXEL1, load_space("proxylessnas-mobile"))
    mine = _variant("mine", last_channels=256)
    own = {e.key for e in mine.distinct_entries()}
    shared = own & set(pixel1.entries)
    assert 0 < len(shared) < len(own)  # the last stage and the head differ
    here = _lut(mine, 1.0)
    here.entries.update({k: {"median": 100.0} for k in own - set(here.entries)})  # priced, but not in Pixel 1
    here.save(tmp_path / "mine.json")

    cmp = compare(here, pixel1)
    assert not cmp.same_space and cmp.spaces == ("mine", "proxylessnas-mobile")
    assert (cmp.matched, cmp.only_a, cmp.only_b) == (len(shared), len(own - shared), len(pixel1.entries) - len(shared))
    assert len(cmp.a.layers) == len(cmp.ratio) == len(mine.layers)
    last = len(mine.layers) - 1
    assert all(r is None for r in cmp.ratio[last]) and cmp.spearman[last] is None
    assert cmp.layers_matched == len(mine.layers) - 1
    assert all(r == pytest.approx(1.0) for row in cmp.ratio[:last] for r in row if r is not None)

    args = [str(tmp_path / "mine.json"), str(PIXEL1), "--space", "proxylessnas-mobile"]
    r = CliRunner().invoke(app, ["plot", "compare", *args, "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 0, r.output
    assert f"{cmp.matched} entries matched, {cmp.unmatched} unmatched" in r.stderr


def _import(c: object, device: str, text: str) -> int:
    body = {"content": text, "format": "ofa", "space": "ofa-mbv3"}
    r = c.post(f"/v1/devices/{device}/luts", json=body, headers=bearer(ADMIN))  # type: ignore[attr-defined]
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_the_compare_page_counts_the_unmatched_entries(store: Store) -> None:
    note10 = NOTE10.read_text()
    records = yaml.safe_load(note10)
    subset = dict(list(records.items())[:30])
    with make_client(store) as c:
        for name in ("note10", "subset", "pixel1"):
            add_device(c, name)
        _import(c, "note10", note10)
        partial = _import(c, "subset", yaml.safe_dump(subset))  # partial: `latest` names none, its job id does
        body = {"content": PIXEL1.read_text(), "format": "proxyless", "space": "proxylessnas-mobile"}
        assert c.post("/v1/devices/pixel1/luts", json=body, headers=bearer(ADMIN)).status_code == 201
        before = full_fingerprint(store)

        r = c.get(f"/compare?a=note10&b=subset&b_lut={partial}")
        assert r.status_code == 200, r.text
        unmatched = len(records) - 30
        assert f'data-matched="30" data-unmatched="{unmatched}"' in r.text
        assert f"({unmatched} only in A, 0 only in B)" in r.text
        assert "rank correlation over the matched entries ρ 1.000" in r.text

        both = c.get("/compare?a=note10&b=note10")  # one LUT against itself: as before, no count shown
        assert both.status_code == 200 and 'id="match"' not in both.text

        r = c.get("/compare?a=note10&b=pixel1")
        assert r.status_code == 409 and "share no entry" in r.text
        assert full_fingerprint(store) == before
