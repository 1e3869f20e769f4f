"""An Android phone over adb: TFLite's ``benchmark_model`` on the phone times each artifact.

``load`` pushes the ``.tflite`` to ``/data/local/tmp``; each ``timed_run`` runs
``benchmark_model --graph=… --num_threads=… --num_runs=… --warmup_runs=…
--use_xnnpack=…`` (optionally under ``taskset MASK``) and returns the phone's
average inference time in µs, so one protocol sample is one ``benchmark_model``
call; ``close`` removes the file. The output is parsed from both forms the tool
prints::

    count=50 first=1203 curr=1187 min=1150 max=1320 avg=1190.4 std=31
    count=50 first=1203 curr=1187 min=1150 max=1320 avg=1190.4 std=31 p5=1155 median=1186 p95=1260
    Inference timings in us: Init: 5123, First inference: 1350, Warmup (avg): 1240.5, Inference (avg): 1190.4

A failed or unparsable run raises :class:`BenchmarkModelError`, which the
protocol records as an error of that entry, not of the whole run.

Only exercised against a stand-in ``adb`` here: no phone was attached.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import Loaded, Runtime, RuntimeUnavailable

__all__ = [
    "AdbError",
    "AdbRuntime",
    "BenchmarkModelError",
    "BenchmarkResult",
    "parse_benchmark_output",
]


class AdbError(RuntimeError):
    """An adb command failed (push, shell, rm); the message carries its output."""


class BenchmarkModelError(RuntimeError):
    """``benchmark_model`` failed on the phone or printed nothing this parser understands."""


_STAT_LINE = re.compile(r"^.*?\bcount=(\d+)\b(?P<rest>.*)$")
_KV = re.compile(r"\b([a-z0-9_]+)=([-+0-9.eE]+)")
_TIMINGS = re.compile(r"Inference timings in us:\s*(?P<body>.*)$")
_TIMING_ITEM = re.compile(r"([A-Za-z ()]+?):\s*([-+0-9.eE]+)")


@dataclass(frozen=True)
class BenchmarkResult:
    """What one ``benchmark_model`` run reported (µs)."""

    inference_avg_us: float
    count: int | None = None
    first_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    std_us: float | None = None
    p5_us: float | None = None
    median_us: float | None = None
    p95_us: float | None = None
    init_us: float | None = None
    warmup_avg_us: float | None = None
    warmup: dict[str, float] = field(default_factory=dict)


def _stat_lines(text: str) -> list[dict[str, float]]:
    out = []
    for line in text.splitlines():
        m = _STAT_LINE.match(line.strip())
        if not m:
            continue
        values = {"count": float(m.group(1))}
        for key, value in _KV.findall(m.group("rest")):
            values[key] = float(value)
        if "(all same)" in line and "curr" in values:  # count=N curr=X(all same)
            for key in ("min", "max", "avg", "first"):
                values.setdefault(key, values["curr"])
            values.setdefault("std", 0.0)
        out.append(values)
    return out


def parse_benchmark_output(text: str) -> BenchmarkResult:
    """Parse ``benchmark_model``'s output (classic and LiteRT forms); :class:`BenchmarkModelError` if unusable.

    The last ``count=…`` line is the timed runs (the first, when there are two,
    the warm-up). ``Inference (avg)`` of the ``Inference timings in us:`` line
    wins over the stat line's ``avg`` when both are present.
    """
    lines = _stat_lines(text)
    timings: dict[str, float] = {}
    for line in text.splitlines():
        m = _TIMINGS.search(line)
        if m:
            timings = {k.strip(): float(v) for k, v in _TIMING_ITEM.findall(m.group("body"))}
    timed = lines[-1] if lines else {}
    warm = lines[0] if len(lines) > 1 else {}
    avg = timings.get("Inference (avg)", timed.get("avg"))
    if avg is None or not np.isfinite(avg) or avg <= 0:
        tail = "\n".join(text.strip().splitlines()[-8:])
        raise BenchmarkModelError(f"benchmark_model: no inference timing in its output; it ended with:\n{tail}")
    return BenchmarkResult(
        inference_avg_us=float(avg),
        count=int(timed["count"]) if "count" in timed else None,
        first_us=timings.get("First inference", timed.get("first")),
        min_us=timed.get("min"),
        max_us=timed.get("max"),
        std_us=timed.get("std"),
        p5_us=timed.get("p5"),
        median_us=timed.get("median"),
        p95_us=timed.get("p95"),
        init_us=timings.get("Init"),
        warmup_avg_us=timings.get("Warmup (avg)", warm.get("avg")),
        warmup=warm,
    )


class _AdbLoaded(Loaded):
    def __init__(self, runtime: AdbRuntime, remote: str) -> None:
        self.runtime = runtime
        self.remote = remote
        self.last: BenchmarkResult | None = None

    def timed_run(self, clock: Callable[[], int]) -> float:
        """One ``benchmark_model`` call: the phone's average inference time (µs)."""
        self.last = self.runtime.benchmark(self.remote)
        return self.last.inference_avg_us

    def run_once(self) -> None:
        self.last = self.runtime.benchmark(self.remote)

    def infer(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("adb: benchmark_model times a model; it returns no outputs")

    def close(self) -> None:
        if self.remote:
            self.runtime.shell(f"rm -f {shlex.quote(self.remote)}", check=False)
            self.remote = ""


@dataclass
class AdbRuntime(Runtime):
    """TFLite's ``benchmark_model`` on an Android phone over adb (one sample = one call's average)."""

    serial: str | None = None
    adb: str = "adb"
    benchmark_binary: str = "/data/local/tmp/benchmark_model"
    remote_dir: str = "/data/local/tmp"
    num_runs: int = 50
    warmup_runs: int = 10
    xnnpack: bool = True
    cpu_mask: str | None = None
    timeout_s: float = 300.0
    _device: dict[str, str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name, self.format = "adb", "tflite"

    # -- adb ----------------------------------------------------------------
    def _adb(self) -> str:
        found = shutil.which(self.adb)
        if found is None:
            raise RuntimeUnavailable(f"adb: {self.adb!r} is not on PATH (install Android platform-tools)")
        return found

    def _call(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self._adb(), *(["-s", self.serial] if self.serial else []), *args]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AdbError(f"adb {' '.join(args[:2])}: no answer in {self.timeout_s:g} s") from exc
        if check and done.returncode != 0:
            tail = (done.stdout + done.stderr).strip()[-2000:]
            raise AdbError(f"adb {' '.join(args[:2])}: exit status {done.returncode}: {tail}")
        return done

    def shell(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the phone's shell."""
        return self._call(["shell", command], check=check)

    def command(self, remote: str) -> str:
        """The ``benchmark_model`` command line for a model at ``remote`` on the phone."""
        parts = [
            self.benchmark_binary,
            f"--graph={remote}",
            f"--num_threads={self.threads}",
            f"--num_runs={self.num_runs}",
            f"--warmup_runs={self.warmup_runs}",
            f"--use_xnnpack={'true' if self.xnnpack else 'false'}",
        ]
        if self.cpu_mask:
            parts = ["taskset", self.cpu_mask, *parts]
        return " ".join(shlex.quote(p) for p in parts)

    def benchmark(self, remote: str) -> BenchmarkResult:
        """Run ``benchmark_model`` on ``remote`` and parse what it printed."""
        done = self._call(["shell", self.command(remote)], check=False)
        text = done.stdout + "\n" + done.stderr
        if done.returncode != 0:
            tail = "\n".join(text.strip().splitlines()[-8:])
            raise BenchmarkModelError(f"benchmark_model: exit status {done.returncode}; it ended with:\n{tail}")
        return parse_benchmark_output(text)

    # -- Runtime --------------------------------------------------------------
    def load(self, path: Path, input_shape: tuple[int, ...]) -> Loaded:
        """Push ``path`` to the phone (``input_shape`` is the model's own; benchmark_model binds random input)."""
        path = Path(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        remote = f"{self.remote_dir.rstrip('/')}/hwlut-{digest}{path.suffix}"
        self._call(["push", str(path), remote])
        return _AdbLoaded(self, remote)

    def device(self) -> dict[str, str]:
        """The phone's model, Android version, ABI and serial, as ``getprop`` reports them."""
        if self._device is None:
            props = {
                "model": "ro.product.model",
                "manufacturer": "ro.product.manufacturer",
                "android": "ro.build.version.release",
                "abi": "ro.product.cpu.abi",
                "soc": "ro.soc.model",
            }
            found: dict[str, str] = {}
            for name, prop in props.items():
                try:
                    value = self.shell(f"getprop {prop}").stdout.strip()
                except (AdbError, RuntimeUnavailable):
                    value = ""
                if value:
                    found[name] = value
            if self.serial:
                found["serial"] = self.serial
            self._device = found
        return dict(self._device)

    def settings(self) -> dict[str, Any]:
        return {
            "runtime": "adb",
            "runtime_version": "benchmark_model",
            "benchmark_binary": self.benchmark_binary,
            "threads": self.threads,
            "xnnpack": self.xnnpack,
            "cpu_mask": self.cpu_mask,
            "num_runs": self.num_runs,
            "warmup_runs": self.warmup_runs,
            "sample": "one benchmark_model call's Inference (avg)",
            "phone": self.device(),
        }
