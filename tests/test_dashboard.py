"""The dashboard in headless Chromium (Playwright) against a live uvicorn on 127.0.0.1 with data in the store.

The store is filled over HTTP the way agents fill it (claim, upload with
provenance, accuracy upload): device ``alpha`` has a complete 32x32 LUT with
an accuracy report, ``beta`` a complete LUT measured with 4 threads and a
running job that this module's "agent" advances while a page watches. The
latencies are a closed-form cost of each entry (multiply-adds), so every
cell the page shows is checked against a value computed here, not read back
from the server. Screenshots go to the pytest tmp dir (``screens/``); every
page's network log must stay on the server.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from lut_store import Store
from lutclient import HwlutClient
from searchspace import Entry, LatencyTable, fbnet_space
from searchspace.accuracy import NetworkRow, accuracy_report
from server import Settings, create_app

ADMIN = "dashboard-admin-token"
CHROMIUM = os.environ.get("HWLUT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]  # fmt: skip
SPACE = fbnet_space(32)
PROVENANCE = {
    "alpha": {"runtime": {"runtime": "onnxruntime", "runtime_version": "1.22.0", "threads": 1, "cache_mode": "warm"},
              "host": {"cpu_model": "Test CPU A", "machine": "x86_64", "governor": "performance", "affinity": [0]}},
    "beta": {"runtime": {"runtime": "onnxruntime", "runtime_version": "1.22.0", "threads": 4, "cache_mode": "warm"},
             "host": {"cpu_model": "Test CPU B", "machine": "x86_64", "governor": "schedutil", "affinity": [0, 1]}},
}  # fmt: skip
#: beta's first LUT, measured before a runtime upgrade (and 1.5x slower)
PROVENANCE["beta-old"] = {
    **PROVENANCE["beta"],
    "runtime": {**PROVENANCE["beta"]["runtime"], "runtime_version": "1.21.0"},
}


def cost_us(entry: Entry, device: str) -> float:
    """A latency per entry from its multiply-adds; ``beta`` has fast 1x1 convolutions (strided skips)."""
    e = entry
    hidden = e.cin * e.expansion
    macs = e.h * e.w * (e.cin * hidden / e.groups + hidden * e.kernel**2 + hidden * e.cout / e.groups) / e.stride**2
    us = 3.0 + macs / 2e4
    if device in ("beta", "beta-old"):
        us *= 0.2 if e.op == "skip" and (e.cin != e.cout or e.stride != 1) else 1.3
    if device == "beta-old":
        return round(cost_us(entry, "beta") * 1.5, 3)
    return round(us, 3)


def stats(entry: Entry, device: str) -> dict[str, Any]:
    """An entry's statistics with a ±2% interval of its median."""
    m = cost_us(entry, device)
    return {"median": m, "mean": m, "count": 30, "ci_low": round(m * 0.98, 4), "ci_high": round(m * 1.02, 4)}


def table(device: str) -> LatencyTable:
    """The complete LUT ``device`` gets in this module, built here (what ``hwlut plot`` may read as a file)."""
    entries = {e.key: stats(e, device) for e in SPACE.distinct_entries()}
    return LatencyTable(SPACE, entries, {"name": device}, dict(PROVENANCE[device]), None, True)


def _measure(client: HwlutClient, job_id: int, device: str, n: int) -> int:
    """Claim and upload ``n`` items as an agent of ``device`` would; returns how many were uploaded."""
    lease = client.claim(job_id, agent=f"agent-{device}", max_items=n)
    results = [{"item_id": i.item_id, "stats": stats(i.entry, device)} for i in lease.items]
    if results:
        client.upload(job_id, lease.lease_id, results, provenance=PROVENANCE[device])
    return len(results)


def _accuracy(lut: LatencyTable) -> dict[str, Any]:
    """A validation of 12 networks, each measured as 1.05 x its LUT sum + 40 µs (as ``hwlut validate`` uploads it)."""
    import random

    rng = random.Random(3)
    archs = list(dict.fromkeys(SPACE.sample(rng).encode() for _ in range(40)))[:12]
    rows = [NetworkRow(a, 1.05 * lut.network_latency(a) + 40.0, lut.network_latency(a), 26) for a in archs]
    report = accuracy_report(rows, split_seed=1, meta={"space": "fbnet", "resolution": 32})
    return {
        "plan": {"seed": 1, "n": len(archs), "named": []},
        "lut_cache_mode": "warm",
        "runtime": PROVENANCE["alpha"]["runtime"],
        "finished_at": "2026-12-02T00:00:00+00:00",
        "report": report.to_dict(),
        "networks": [{"arch": a, "artifact": f"net{i}", "stats": {"median": 1.0}} for i, a in enumerate(archs)],
    }


def poll(predicate: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Live:
    """A uvicorn on 127.0.0.1 serving ``store``; stop with :meth:`stop`."""

    def __init__(self, store: Store) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        app = create_app(Settings(admin_token=ADMIN), store=store)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        poll(lambda: self.server.started, "uvicorn to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The live server with two devices, two complete LUTs (one with accuracy) and a running job."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('dash') / 'hwlut.db'}")
    store.upgrade()
    live = Live(store)
    out: dict[str, Any] = {"url": live.url}
    with HwlutClient(live.url, token=ADMIN) as admin:
        for device in ("alpha", "beta"):
            token = admin.create_device(device, hardware={"cpu": PROVENANCE[device]["host"]["cpu_model"]})["token"]
            with HwlutClient(live.url, token=token) as agent:
                if device == "beta":  # an older LUT, before a runtime upgrade: the history's first point
                    old = agent.create_job(device, resolution=32, runtime="onnxruntime")["id"]
                    assert _measure(agent, old, "beta-old", 1000) == len(SPACE.distinct_entries())
                    out["beta-old"] = old
                job = agent.create_job(device, resolution=32, runtime="onnxruntime")
                assert _measure(agent, job["id"], device, 1000) == len(SPACE.distinct_entries())
                out[device] = job["id"]
                if device == "beta":
                    running = agent.create_job(device, resolution=32, runtime="onnxruntime")["id"]
                    _measure(agent, running, device, 10)
                    out["running"], out["beta_token"] = running, token
        admin.upload_accuracy("alpha", _accuracy(table("alpha")), lut=out["alpha"])
    yield out
    live.stop()
    store.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's) for the module."""
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs Chromium at {CHROMIUM} (scripts/test.sh installs Debian's chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screens")


@pytest.fixture
def page(browser: Any, screens: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; after the test: a full-page screenshot, and no request may have left the server."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    urls: list[str] = []
    pg.on("request", lambda r: urls.append(r.url))
    pg.set_default_timeout(15_000)
    yield pg
    tall = pg.evaluate("document.documentElement.scrollHeight") > 4000  # ReDoc: its first screen is enough
    pg.screenshot(path=str(screens / f"{request.node.name}.png"), full_page=not tall)
    context.close()
    base = getattr(pg, "hwlut_base", None)
    assert urls and base is not None
    outside = [u for u in urls if not u.removeprefix("blob:").startswith(base + "/")]  # ReDoc's worker: a blob
    assert outside == [], f"requests outside the server: {outside}"


def visit(pg: Any, base: str, path: str) -> Any:
    pg.hwlut_base = base
    response = pg.goto(base + path)
    assert response is not None
    return response


def test_devices_page(page: Any, data: dict[str, Any]) -> None:
    assert visit(page, data["url"], "/").status == 200
    for device in ("alpha", "beta"):
        section = page.locator(f"section[data-device={device}]")
        assert section.locator("[data-cond='CPU model']").inner_text() == PROVENANCE[device]["host"]["cpu_model"]
        threads = PROVENANCE[device]["runtime"]["threads"]
        assert section.locator("[data-cond=threads]").inner_text() == str(threads)
        assert "onnxruntime" in section.locator(".runtimes").inner_text()
        assert f"agent-{device}" in section.locator(".agent").inner_text()
    assert "1 complete" in page.locator("section[data-device=alpha] .luts").inner_text()
    luts = page.locator("section[data-device=beta] .luts").inner_text()
    assert "1 partial" in luts and "2 complete" in luts


def test_lut_page_heatmap_fixed_accuracy_downloads(page: Any, data: dict[str, Any]) -> None:
    base, job = data["url"], data["alpha"]
    visit(page, base, f"/devices/alpha/luts/{job}")
    cells = page.locator("#heatmap td.cell")
    assert cells.count() == 22 * 9
    got = cells.evaluate_all(
        "cs => cs.map(c => [+c.dataset.layer, c.dataset.candidate, c.dataset.value, c.dataset.ciLow, c.dataset.ciHigh])"
    )
    for i, cand, value, low, high in got:
        entry = SPACE.layers[i].entry(cand)
        want = stats(entry, "alpha")
        assert float(value) == pytest.approx(want["median"] / 1000), (i, cand)
        assert (float(low), float(high)) == pytest.approx((want["ci_low"] / 1000, want["ci_high"] / 1000))
    fixed = page.locator("#fixed tr[data-part]")
    assert fixed.count() == 4
    for part, entry in SPACE.fixed_entries().items():
        shown = page.locator(f"#fixed tr[data-part={part}]").get_attribute("data-value")
        assert float(shown) == pytest.approx(cost_us(entry, "alpha") / 1000)
    points = page.locator("#scatter circle[data-series='raw LUT sum']")
    assert points.count() == 12
    assert page.locator("#scatter polygon").count() == 1  # the ±10% band
    assert page.locator("#accuracy-figures tr[data-predictor=calibrated]").count() == 1
    assert page.locator("#conditions [data-cond=threads]").inner_text() == "1"
    links = page.locator("a.download").evaluate_all("as => as.map(a => a.href)")
    assert len(links) == 5
    codes = {link.rsplit("=", 1)[1]: httpx.get(link).status_code for link in links}
    assert codes["hwlut"] == codes["csv"] == 200 and set(codes.values()) <= {200, 409}
    downloaded = LatencyTable.from_dict(httpx.get(links[0]).json())
    assert (
        downloaded.entries[SPACE.layers[0].entry("k3_e1").key]["median"]
        == stats(SPACE.layers[0].entry("k3_e1"), "alpha")["median"]
    )


def test_job_progress_changes_while_an_agent_uploads(page: Any, data: dict[str, Any]) -> None:
    base, job = data["url"], data["running"]
    visit(page, base, f"/jobs/{job}")
    before = int(page.locator("#done").inner_text())
    total = int(page.locator("#total").inner_text())
    assert before == 10 and total == len(SPACE.distinct_entries())
    page.evaluate("window.hwlutNotReloaded = true")
    with HwlutClient(base, token=data["beta_token"]) as agent:
        uploaded = _measure(agent, job, "beta", 25)
    page.wait_for_function(f"document.querySelector('#done').innerText === '{before + uploaded}'")
    assert page.evaluate("window.hwlutNotReloaded") is True  # refreshed in place, not reloaded
    assert int(page.locator("#pending").inner_text()) == total - before - uploaded
    assert "agent-beta" in page.locator("#agents").inner_text()
    assert page.locator("#rate").inner_text().endswith("entries/min")


def test_compare_page_names_the_layers_whose_fastest_differs(page: Any, data: dict[str, Any]) -> None:
    visit(page, data["url"], "/compare?a=alpha&b=beta")
    want = []
    for layer in SPACE.layers:
        fast = [min(layer.candidate_names, key=lambda c: cost_us(layer.entry(c), d)) for d in ("alpha", "beta")]
        if fast[0] != fast[1]:
            want.append((layer.index, *fast))
    assert want  # the data makes some differ
    rows = page.locator("#differing tr[data-layer]").evaluate_all(
        "rs => rs.map(r => [+r.dataset.layer, r.cells[1].innerText, r.cells[2].innerText])"
    )
    assert [tuple(r) for r in rows] == want
    assert page.locator("#ratio td.cell").count() == 22 * 9
    warning = page.locator("#conditions-warning").inner_text()
    assert "runtime.threads: 1 != 4" in warning and "host.cpu_model" in warning
    rho = page.locator("#spearman tr[data-layer]")
    assert rho.count() == 22


def test_history_marks_the_runtime_upgrade(page: Any, data: dict[str, Any]) -> None:
    visit(page, data["url"], "/devices/beta/history")
    rows = page.locator("#history tr[data-lut]")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.lut)") == [str(data["beta-old"]), str(data["beta"])]
    for network in ("fbnet-a", "fbnet-b", "fbnet-c"):
        shown = rows.locator(f"td[data-network={network}]").evaluate_all("cs => cs.map(c => +c.dataset.value)")
        entries = SPACE.entries_of(network)
        want = [sum(cost_us(e, d) for e in entries) / 1000 for d in ("beta-old", "beta")]
        assert shown == pytest.approx(want)
    assert rows.nth(1).get_attribute("class") == "step"
    assert "runtime.runtime_version: '1.21.0' != '1.22.0'" in rows.nth(1).inner_text()
    assert page.locator("#history-chart polyline").count() == 3


def test_jobs_page_lists_the_running_job_first(page: Any, data: dict[str, Any]) -> None:
    visit(page, data["url"], "/jobs")
    first = page.locator("#jobs tr[data-job]").first
    assert first.get_attribute("data-job") == str(data["running"])


def test_api_docs_load_without_a_cdn(page: Any, data: dict[str, Any]) -> None:
    visit(page, data["url"], "/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "hwlut" in page.locator(".swagger-ui .info .title").inner_text()
    visit(page, data["url"], "/redoc")
    page.get_by_text("Device latency lookup tables").first.wait_for()


def test_a_fresh_server_says_what_to_do_next(page: Any, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    store.upgrade()
    live = Live(store)
    try:
        for path, hint in (("/", "hwlut device add"), ("/jobs", "hwlut job create"), ("/compare", "register two")):
            assert visit(page, live.url, path).status == 200
            assert hint in page.locator("#empty").inner_text()
        with HwlutClient(live.url, token=ADMIN) as admin:
            admin.create_device("fresh")
        visit(page, live.url, "/")
        assert "hwlut job create --device fresh" in page.locator("section[data-device=fresh]").inner_text()
        assert visit(page, live.url, "/devices/fresh/history").status == 200
        assert "no complete LUT yet" in page.locator("#empty").inner_text()
        assert visit(page, live.url, "/devices/fresh/luts/latest").status == 404
        assert "hwlut job create --device fresh" in page.locator("#empty").inner_text()
        assert visit(page, live.url, "/devices/ghost/luts/latest").status == 404
        assert "ghost" in page.locator("#empty").inner_text()
    finally:
        live.stop()
        store.dispose()


def test_openapi_examples_are_valid_requests() -> None:
    """The main request schemas carry examples (shown by /docs and /redoc), and each is accepted as it stands."""
    from server.schemas import DeviceCreate, JobCreate

    schemas = create_app(Settings(), store=Store("sqlite://"), check_schema=False).openapi()["components"]["schemas"]
    for model in (DeviceCreate, JobCreate):
        examples = schemas[model.__name__]["examples"]
        assert examples
        for example in examples:
            model.model_validate(example)
    for example in schemas["JobCreate"]["examples"]:
        JobCreate.model_validate(example).settings()


def _search_result() -> dict[str, Any]:
    """A search result as ``hwlut search`` writes it (the keys the page reads), P(θ) peaked on one candidate."""
    layers, arch = [], []
    for layer in SPACE.layers:
        names = list(layer.candidate_names)
        top = names[layer.index % len(names)]
        probs = [0.6 if c == top else 0.4 / (len(names) - 1) for c in names]
        layers.append({"index": layer.index, "candidates": names, "theta": probs, "probability": probs})
        arch.append(top)
    lut = table("alpha")
    history = [
        {"epoch": e, "theta_trained": e > 1, "train_acc": 0.3 + 0.1 * e, "arch_acc": 0.25 + 0.1 * e, "val_acc": None,
         "expected_latency_us": 9000.0 - 500 * e, "argmax_latency_us": lut.network_latency(",".join(arch))}
        for e in (1, 2, 3)
    ]  # fmt: skip
    return {
        "lut": {"device": "alpha"},
        "loss": "CE * 0.2 * log(LAT / 1 ms) ^ 0.6",
        "layers": layers,
        "argmax": {"arch": ",".join(arch), "latency_us": lut.network_latency(",".join(arch))},
        "history": history,
    }


def test_search_page_shows_an_uploaded_result_and_refuses_a_bad_one(
    page: Any, data: dict[str, Any], tmp_path: Path
) -> None:
    import json

    doc = _search_result()
    good, bad = tmp_path / "search_result.json", tmp_path / "bad.json"
    good.write_text(json.dumps(doc))
    broken = json.loads(json.dumps(doc))
    broken["layers"][3]["probability"][0] = "high"
    bad.write_text(json.dumps(broken))
    visit(page, data["url"], "/search")
    assert "hwlut search" in page.locator("#empty").inner_text()
    page.set_input_files("input[name=result]", str(good))
    page.click("button[type=submit]")
    page.locator("#theta").wait_for()
    assert page.locator("#argmax").inner_text() == doc["argmax"]["arch"]
    assert float(page.locator("#argmax-ms").inner_text()) == pytest.approx(doc["argmax"]["latency_us"] / 1000, 1e-2)
    chosen = page.locator("#theta td.chosen").evaluate_all("cs => cs.map(c => [c.dataset.candidate, +c.dataset.value])")
    assert [c for c, _ in chosen] == doc["argmax"]["arch"].split(",") and {p for _, p in chosen} == {0.6}
    assert page.locator("#theta td.cell").count() == 22 * 9
    assert page.locator("#epochs tr[data-epoch]").count() == 3
    page.goto(data["url"] + "/search")
    page.set_input_files("input[name=result]", str(bad))
    with page.expect_response(lambda r: r.url.endswith("/search") and r.request.method == "POST") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 422
    assert "layers[3].probability[0]: expected a finite number" in page.locator("#error").inner_text()


def test_plot_reads_the_servers_luts_and_accuracy(data: dict[str, Any], tmp_path: Path) -> None:
    """``hwlut plot`` on the live server's LUTs: the same sources the pages read."""
    from typer.testing import CliRunner

    from hwlut.cli import app

    runner, url = CliRunner(), data["url"]
    for args in (
        ["lut", "--device", "alpha", "--server", url],
        ["accuracy", "--device", "alpha", "--server", url],
        ["compare", "alpha", f"beta@{data['beta']}", "--server", url],
    ):
        out = tmp_path / f"{args[0]}.png"
        r = runner.invoke(app, ["plot", *args, "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert out.stat().st_size > 10_000
    assert "runtime.threads: 1 != 4" in r.stderr
    r = runner.invoke(app, ["plot", "accuracy", "--device", "beta", "--server", url, "--out", str(tmp_path / "x.png")])
    # the server refused (404): one line and exit 2, as every command answers a refusal
    assert r.exit_code == 2 and "no accuracy report" in r.stderr and "Traceback" not in r.output
