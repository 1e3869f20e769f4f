"""The searcher: differentiable LUT latency, FBNet's loss, the loop, resume, LUT sources, data, CLI.

A tiny space (16x16, 3 searchable layers, 4 candidates) and a synthetic LUT
built from its distinct entries keep every search to seconds: the LUT's
content is data, the search is what is tested.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import pytest
import torch

from searcher import (
    LatencyLoss,
    LatencyModel,
    LutSourceError,
    SearchConfig,
    Searcher,
    SearchInterrupted,
    SuperNet,
    fetch_server_lut,
    gumbel_softmax,
    load_image_folder,
    load_lut_file,
    proxy_task,
    resolve_unit_ms,
    synthetic_table,
)
from searchspace import HeadSpec, LatencyTable, MissingEntries, SpaceSpec, StageSpec, StemSpec


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: the 2-core test machine is shared, and oversubscribed OpenMP crawls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_space(*, no_skip_first: bool = False) -> SpaceSpec:
    """16x16 input, 3 searchable layers (one stride 2), 4 candidates, 10 classes."""
    first = ("k3_e1", "k3_e3", "k5_e6") if no_skip_first else None
    return SpaceSpec(
        name="tiny",
        resolution=16,
        stages=(StageSpec(8, 1, 1, first), StageSpec(16, 2, 2)),
        candidates=("k3_e1", "k3_e3", "k5_e6", "skip"),
        stem=StemSpec(8, 3, 1),
        head=HeadSpec(32, 1),
        num_classes=10,
    )


@pytest.fixture(scope="module")
def space() -> SpaceSpec:
    return tiny_space()


@pytest.fixture(scope="module")
def lut_file(tmp_path_factory: pytest.TempPathFactory, space: SpaceSpec) -> Path:
    path = tmp_path_factory.mktemp("lut") / "tiny.json"
    table = synthetic_table(space, device="tiny-cpu")
    table.provenance["job"] = "job-7"
    table.save(path)
    return path


@pytest.fixture(scope="module")
def task() -> torch.utils.data.Dataset:
    return proxy_task("synthetic", resolution=16, samples=640, seed=0)


def small_config(**changes: object) -> SearchConfig:
    base: dict[str, object] = dict(
        epochs=4, warmup_epochs=1, batch_size=32, theta_lr=0.05, samples=3, seed=0, device_type="cpu"
    )
    base.update(changes)
    return SearchConfig(**base)  # type: ignore[arg-type]


# -- differentiable latency ------------------------------------------------------------


@pytest.mark.parametrize("target", [None, 0.03])
def test_latency_gradient_matches_finite_differences(space: SpaceSpec, target: float | None) -> None:
    table = synthetic_table(space)
    model = LatencyModel(table, space, unit_ms=resolve_unit_ms(None, LatencyModel(table, space).bounds_us()[0]))
    loss = LatencyLoss(alpha=0.2, beta=0.6, target=None if target is None else target / model.unit_ms)
    gen = torch.Generator().manual_seed(3)
    theta0 = torch.randn(model.table.shape, generator=gen, dtype=torch.float64)
    noise = -torch.log(-torch.log(torch.rand(model.table.shape, generator=gen, dtype=torch.float64)))
    tau = 2.0

    def term(theta: torch.Tensor) -> torch.Tensor:
        m = torch.softmax((theta + noise) / tau, dim=-1)
        return loss.latency_factor(model(m))

    theta = theta0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(term(theta), theta)
    eps = 1e-6
    numeric = torch.zeros_like(theta0)
    for idx in np.ndindex(*theta0.shape):
        up, down = theta0.clone(), theta0.clone()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (term(up) - term(down)) / (2 * eps)
    assert grad.abs().max() > 1e-4  # the term does depend on θ
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-9)


def test_latency_tensor_equals_lut_sum_for_one_hot_mixtures(space: SpaceSpec) -> None:
    table = synthetic_table(space, overhead_us=3.0)
    model = LatencyModel(table, space, unit_ms=0.01)
    rng = np.random.default_rng(0)
    for _ in range(10):
        picks = [int(rng.integers(len(layer.candidates))) for layer in space.layers]
        m = torch.zeros(model.table.shape)
        m[range(len(picks)), picks] = 1.0
        arch = ",".join(layer.candidate_names[k] for layer, k in zip(space.layers, picks, strict=True))
        expected_units = table.network_latency(arch) / (1000 * 0.01)
        assert model(m).item() == pytest.approx(expected_units, rel=1e-5)
        assert model.arch_latency_us(picks) == pytest.approx(table.network_latency(arch), rel=1e-12)


def test_latency_unit_keeps_log_positive() -> None:
    # FBNet's milliseconds when the fastest network is slow enough...
    assert resolve_unit_ms(None, fastest_us=20_000.0) == 1.0
    # ...a smaller unit below e ms, so that log(LAT) >= 1 for every network
    unit = resolve_unit_ms(None, fastest_us=400.0)
    assert unit == pytest.approx(0.4 / math.e)
    assert math.log(0.4 / unit) == pytest.approx(1.0)
    assert resolve_unit_ms(0.1, fastest_us=400.0) == 0.1
    with pytest.raises(ValueError, match="negative"):
        resolve_unit_ms(1.0, fastest_us=400.0)  # 0.4 ms in units of 1 ms: log < 0


def test_gumbel_softmax_masks_padding_and_sums_to_one() -> None:
    space = tiny_space(no_skip_first=True)  # layer 0 has 3 candidates, the others 4
    net = SuperNet(space, num_classes=10)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        m = net.sample_mixture(1.0, generator=gen)
        assert m[0, 3].item() == 0.0
        torch.testing.assert_close(m.sum(dim=1), torch.ones(3))
    one_hot = gumbel_softmax(torch.tensor([[0.0, 50.0]]), 0.1, noise=False)
    torch.testing.assert_close(one_hot, torch.tensor([[0.0, 1.0]]))


# -- missing entries ------------------------------------------------------------------------


class _Untouchable(torch.utils.data.Dataset):
    classes: ClassVar[list[str]] = [str(i) for i in range(10)]

    def __len__(self) -> int:
        raise AssertionError("the data was touched: training started despite missing entries")

    def __getitem__(self, i: int) -> object:
        raise AssertionError("the data was touched")


def test_missing_entries_reported_before_training(space: SpaceSpec, tmp_path: Path) -> None:
    table = synthetic_table(space)
    dropped = sorted(table.entries)[:2]
    for key in dropped:
        del table.entries[key]
    table.save(tmp_path / "partial.json")
    loaded, source = load_lut_file(tmp_path / "partial.json")
    with pytest.raises(MissingEntries) as info:
        Searcher(loaded, source, _Untouchable(), small_config())
    assert sorted(info.value.keys) == dropped

    from typer.testing import CliRunner

    from hwlut.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["search", "--lut", str(tmp_path / "partial.json"), "--proxy", "synthetic", "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    for key in dropped:
        assert key in result.output
    assert "no training started" in result.output
    assert not out.exists()


# -- the search ------------------------------------------------------------------------------


def test_large_beta_pushes_expected_latency_down_beta_zero_does_not(
    space: SpaceSpec, lut_file: Path, task: torch.utils.data.Dataset, tmp_path: Path
) -> None:
    table, source = load_lut_file(lut_file)
    lo, hi = LatencyModel(table, space).bounds_us()
    runs = {}
    for beta in (0.0, 4.0):
        searcher = Searcher(table, source, task, small_config(beta=beta))
        start = searcher.expected_latency_us()
        result = searcher.run(tmp_path / f"beta{beta}")
        runs[beta] = [start] + [h["expected_latency_us"] for h in result["history"]]
    pushed, free = runs[4.0], runs[0.0]
    span = hi - lo
    # large β: falls in every epoch in which θ is trained, by a clear share of the space's range
    assert pushed[1] == pushed[0]  # warm-up: θ frozen
    assert all(b < a for a, b in itertools.pairwise(pushed[1:]))
    assert pushed[0] - pushed[-1] > 0.1 * span
    # β = 0: latency has no say; it is not pushed down (the CE alone may even favour slower ops)
    assert free[-1] > free[0] - 0.02 * span
    assert pushed[-1] < free[-1] - 0.1 * span

    # with β = 0 the LUT's numbers cannot matter: a table with every latency reversed gives the same θ
    reversed_table = synthetic_table(space, device="reversed")
    ordered = sorted(reversed_table.entries)
    medians = [reversed_table.entries[k]["median"] for k in ordered]
    for key, median in zip(ordered, reversed(medians), strict=True):
        reversed_table.entries[key]["median"] = median
    reversed_table.save(tmp_path / "reversed.json")
    other_table, other_source = load_lut_file(tmp_path / "reversed.json")
    a = Searcher(table, source, task, small_config(beta=0.0, epochs=2, samples=0))
    b = Searcher(other_table, other_source, task, small_config(beta=0.0, epochs=2, samples=0))
    a.run(tmp_path / "a")
    b.run(tmp_path / "b")
    torch.testing.assert_close(a.net.theta, b.net.theta, rtol=0, atol=0)


def test_target_latency_form_pushes_towards_the_target(
    space: SpaceSpec, lut_file: Path, task: torch.utils.data.Dataset, tmp_path: Path
) -> None:
    table, source = load_lut_file(lut_file)
    fastest_ms = LatencyModel(table, space).bounds_us()[0] / 1000
    searcher = Searcher(table, source, task, small_config(epochs=3, beta=4.0, target_ms=fastest_ms))
    start = searcher.expected_latency_us()
    result = searcher.run(tmp_path / "target")
    assert result["loss"].startswith("CE * 0.2 * (LAT /")
    assert result["history"][-1]["expected_latency_us"] < start


def test_a_target_search_reports_the_likeliest_architecture_at_the_target(
    space: SpaceSpec, lut_file: Path, task: torch.utils.data.Dataset, tmp_path: Path
) -> None:
    """With a calibration, the loss aims at the raw sum mapped to the target; the result's target architecture
    is predicted (calibrated) within 1% of it and no architecture as likely is nearer the target's window."""
    table, source = load_lut_file(lut_file)
    table.provenance["calibration"] = {"kind": "linear", "slope": 1.2, "intercept_us": 30.0}
    lo, hi = LatencyModel(table, space).bounds_us()
    target_ms = (1.2 * (lo + 0.4 * (hi - lo)) + 30.0) / 1000
    searcher = Searcher(table, source, task, small_config(epochs=1, beta=2.0, target_ms=target_ms))
    assert searcher.target_raw_ms == pytest.approx((target_ms * 1000 - 30.0) / 1.2 / 1000, rel=1e-9)
    result = searcher.run(tmp_path / "aim")
    aim = result["target"]
    assert aim["calibrated_latency_us"] == pytest.approx(1.2 * table.network_latency(aim["arch"]) + 30.0)
    assert abs(aim["calibrated_latency_us"] / (target_ms * 1000) - 1) <= 0.01
    assert aim["predicted_error_pct"] == pytest.approx(100 * (aim["calibrated_latency_us"] / (target_ms * 1000) - 1))
    assert aim["probability"] <= result["argmax"]["probability"] + 1e-12  # the argmax is the likeliest of all
    plain = Searcher(table, source, task, small_config(epochs=1, beta=2.0))
    assert "target" not in plain.run(tmp_path / "plain")  # no target, no target architecture


def test_resume_gives_the_same_theta_as_an_uninterrupted_run(
    space: SpaceSpec, lut_file: Path, task: torch.utils.data.Dataset, tmp_path: Path
) -> None:
    table, source = load_lut_file(lut_file)
    config = small_config(epochs=3, beta=2.0)
    straight = Searcher(table, source, task, config)
    expected = straight.run(tmp_path / "straight")

    def stop_after_two(record: dict[str, object]) -> None:
        if record["epoch"] == 2:
            raise SearchInterrupted("stopped")

    first = Searcher(table, source, task, config)
    with pytest.raises(SearchInterrupted):
        first.run(tmp_path / "resumed", on_epoch=stop_after_two)
    assert (tmp_path / "resumed" / "checkpoint.pt").is_file()
    assert not (tmp_path / "resumed" / "search_result.json").exists()

    second = Searcher(table, source, task, config)
    resumed = second.run(tmp_path / "resumed", resume=True)
    assert second.net.theta.abs().sum() > 0  # θ was trained
    torch.testing.assert_close(second.net.theta, straight.net.theta, rtol=0, atol=0)
    assert resumed["argmax"] == expected["argmax"]
    assert resumed["history"] == expected["history"]

    # a checkpoint of another search is refused, not silently continued
    with pytest.raises(ValueError, match="another search"):
        Searcher(table, source, task, small_config(epochs=3, beta=1.0)).run(tmp_path / "resumed", resume=True)

    # the result: which LUT, θ per layer, argmax and K samples with latency, FLOPs, params
    doc = json.loads((tmp_path / "resumed" / "search_result.json").read_text())
    assert doc["lut"]["device"] == "tiny-cpu"
    assert doc["lut"]["job"] == "job-7"
    assert doc["lut"]["content_hash"] == source.content_hash and len(source.content_hash) == 64
    assert [layer["candidates"] for layer in doc["layers"]] == [list(la.candidate_names) for la in space.layers]
    for layer in doc["layers"]:
        assert sum(layer["probability"]) == pytest.approx(1.0)
    assert len(doc["samples"]) == 3
    for item in [doc["argmax"], *doc["samples"]]:
        assert item["latency_us"] == pytest.approx(table.network_latency(item["arch"]))
        assert item["calibrated_latency_us"] is None  # this LUT has no calibration data
        assert item["flops"] > 0 and item["params"] > 0
    assert len(doc["history"]) == 3


def test_calibration_hook_uses_overhead_and_fits(space: SpaceSpec) -> None:
    from searcher import calibrated_latency

    table = synthetic_table(space)
    arch = "k3_e1,skip,k5_e6"
    raw = table.network_latency(arch)
    assert calibrated_latency(table, space, arch) is None
    table.overhead_us = 2.0
    assert calibrated_latency(table, space, arch) == pytest.approx(raw - (len(space.entries_of(arch)) - 1) * 2.0)
    table.provenance["calibration"] = {"slope": 0.9, "intercept_us": 4.0}
    assert calibrated_latency(table, space, arch) == pytest.approx(0.9 * raw + 4.0)


def test_fbnet_32_space_with_a_narrow_super_net(tmp_path: Path) -> None:
    """The real 32x32 FBNet space: 22 layers x 9 candidates, trained narrow, priced at full width."""
    from searchspace import fbnet_space

    space = fbnet_space(32)
    synthetic_table(space, device="fbnet32").save(tmp_path / "fbnet32.json")
    table, source = load_lut_file(tmp_path / "fbnet32.json")
    task = proxy_task("digits", resolution=32, samples=64)
    config = small_config(epochs=1, warmup_epochs=0, batch_size=8, max_steps=1, width_mult=0.125, samples=1)
    searcher = Searcher(table, source, task, config)
    assert searcher.net.stem[0].out_channels == 8 and searcher.net.classifier.fc.out_features == 10
    result = searcher.run(tmp_path / "out")
    assert len(result["layers"]) == 22 and all(len(la["candidates"]) == 9 for la in result["layers"])
    best = result["argmax"]
    # cost and latency describe the full-width network of the LUT's space (head 1504, 100 classes)
    assert best["latency_us"] == pytest.approx(table.network_latency(best["arch"]))
    assert best["params"] > 1504 * 100
    assert result["latency_unit_ms"] < 1.0  # a synthetic 32x32 LUT is faster than e ms: unit shrunk


# -- LUT sources ----------------------------------------------------------------------------


def test_server_source_fetches_the_lut_document(space: SpaceSpec) -> None:
    table = synthetic_table(space, device="pixel7-cpu-1t")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/v1/devices/pixel7-cpu-1t/luts/latest":
            return httpx.Response(200, json=table.to_dict(), headers={"X-Hwlut-Lut": "42"})
        return httpx.Response(404, json={"detail": "no such device"})

    transport = httpx.MockTransport(handler)
    got, source = fetch_server_lut("http://lut.example/", "pixel7-cpu-1t", transport=transport)
    assert got.entries == table.entries
    assert (source.kind, source.device, source.job) == ("server", "pixel7-cpu-1t", "42")
    assert seen == ["/v1/devices/pixel7-cpu-1t/luts/latest"]
    with pytest.raises(LutSourceError, match="404"):
        fetch_server_lut("http://lut.example", "nope", transport=transport)


class _AppTransport(httpx.BaseTransport):
    """Forwards the shared client's requests to an in-process server app (a FastAPI TestClient)."""

    def __init__(self, app_client: object) -> None:
        self.app_client = app_client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.app_client.request(  # type: ignore[attr-defined]
            request.method, str(request.url), headers=dict(request.headers), content=request.read()
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def test_server_source_against_the_real_server(space: SpaceSpec, tmp_path: Path) -> None:
    """Import a LUT into the real server app, then fetch it back as a search would."""
    from fastapi.testclient import TestClient

    from lut_store.testing import empty_store
    from server import Settings, create_app

    store = empty_store("sqlite", tmp_path)
    store.upgrade()
    admin = {"Authorization": "Bearer admin-token"}
    table = synthetic_table(space, device="edge-box")
    try:
        with TestClient(create_app(Settings(admin_token="admin-token"), store=store)) as app_client:
            r = app_client.post("/v1/devices", json={"name": "edge-box"}, headers=admin)
            assert r.status_code == 201, r.text
            token = r.json()["token"]
            r = app_client.post(
                "/v1/devices/edge-box/luts",
                json={"content": json.dumps(table.to_dict())},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
            job_id = str(r.json()["id"])
            got, source = fetch_server_lut(
                "http://hwlut.test", "edge-box", token=token, transport=_AppTransport(app_client)
            )
            with pytest.raises(LutSourceError, match="404"):
                fetch_server_lut("http://hwlut.test", "nobody", token=token, transport=_AppTransport(app_client))
    finally:
        store.dispose()
    assert source.job == job_id and source.device == "edge-box"
    assert got.missing(space.distinct_entries()) == []
    for entry in space.distinct_entries():
        assert got.latency(entry) == pytest.approx(table.latency(entry))


# -- data --------------------------------------------------------------------------------------


def test_image_folder_loader(tmp_path: Path, lut_file: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("val", 2)):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    train, val = load_image_folder(tmp_path, resolution=16)
    assert train.classes == ["cat", "dog"] and len(train) == 10
    assert val is not None and len(val) == 4
    image, label = train[7]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label == 1
    # a search reads it through a DataLoader and reports the argmax architecture's val accuracy
    table, source = load_lut_file(lut_file)
    searcher = Searcher(table, source, train, small_config(epochs=1, warmup_epochs=0, samples=0), val_set=val)
    result = searcher.run(tmp_path / "out")
    assert result["history"][0]["val_acc"] in {0.0, 0.25, 0.5, 0.75, 1.0}
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(tmp_path / "train" / "cat", resolution=16)


def test_proxy_tasks_are_seeded_and_sized() -> None:
    a = proxy_task("synthetic", resolution=16, samples=50, seed=1)
    b = proxy_task("synthetic", resolution=16, samples=50, seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.shape == (50, 3, 16, 16) and len(a.classes) == 10
    digits = proxy_task("digits", resolution=32, samples=100)
    assert digits.images.shape == (100, 3, 32, 32) and set(digits.labels.tolist()) <= set(range(10))
    with pytest.raises(ValueError, match="known"):
        proxy_task("imagenet")


# -- the command --------------------------------------------------------------------------------


def test_cli_two_luts_side_by_side(space: SpaceSpec, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hwlut.cli import app

    paths = []
    for name, per_mmac, seed in (("dev-a", 1.0, 1), ("dev-b", 4.0, 2)):
        table = synthetic_table(space, device=name, us_per_mmac=per_mmac, jitter=0.5, seed=seed)
        paths.append(tmp_path / f"{name}.json")
        table.save(paths[-1])
    out = tmp_path / "out"
    args = ["search", "--lut", str(paths[0]), "--lut", str(paths[1]), "--proxy", "synthetic"]
    args += ["--proxy-samples", "200", "--epochs", "2", "--warmup", "1", "--max-steps", "2", "--batch-size", "16"]
    args += ["--samples", "2", "--device-type", "cpu", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "on dev-a" in result.output and "on dev-b" in result.output
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison["architectures"]) == {"dev-a", "dev-b"}
    for name in ("dev-a", "dev-b"):
        for file in ("search_result.json", "theta.png", "curves.png", "checkpoint.pt"):
            assert (out / name / file).is_file()
        row = comparison["latency_us"][name]
        arch = comparison["architectures"][name]
        for other, path in (("dev-a", paths[0]), ("dev-b", paths[1])):
            assert row[other] == pytest.approx(LatencyTable.load(path).network_latency(arch))
