"""A profiling job's settings as one typed value: :class:`JobSettings`, shared by client, server and agent.

A job says what it is measured with: the runtime and its threads (columns of
the job) and, in the job's ``options`` (JSON), the measurement protocol's
fields, XNNPACK (LiteRT, adb), the onnxruntime optimisation level and the
cache mode. :meth:`JobSettings.to_dict` gives that stored form, the one the
HTTP API carries::

    {"runtime": "tflite", "threads": 1,
     "options": {"protocol": {"time_cap_s": 2.0}, "xnnpack": true, "cache_mode": "l2"}}

and :meth:`JobSettings.from_dict` reads it back (a job record as the server
shows it too: other keys are left alone). A setting not given is left out
of ``options`` and means the runtime's default; a job stored without
``cache_mode`` (made before cache modes existed) runs warm.

A value that cannot be used is a :class:`~searchspace.fields.FieldError`
naming the field as the request spells it (``runtime``, ``threads``,
``options.cache_mode``, ``options.protocol.time_cap_s``). ``options`` keys
that are no setting are refused when a job is made (``strict``); reading a
stored job passes them over (``entries`` and ``validation`` are the job's
work, written by the store).

The names here are pure data the runtimes' plug-ins (:mod:`profiler.runtimes`)
agree with: :data:`RUNTIME_ALIASES`, :data:`CACHE_MODES`,
:data:`DEFAULT_CACHE_MODES`, :data:`OPTIMIZATION_LEVELS`, and the protocol's
fields (:data:`PROTOCOL_FIELDS`, those of :class:`profiler.protocol.ProtocolConfig`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .fields import FieldError, check_probability, is_finite_number, is_whole

__all__ = [
    "CACHE_MODES",
    "DEFAULT_CACHE_MODES",
    "MAX_RUNTIME_NAME",
    "MAX_THREADS",
    "OPTIMIZATION_LEVELS",
    "PROTOCOL_FIELDS",
    "RUNTIMES",
    "RUNTIME_ALIASES",
    "SETTING_OPTIONS",
    "JobSettings",
    "canonical_runtime",
    "default_cache_mode",
]

#: The runtimes an agent measures with.
RUNTIMES = ("ort", "tflite", "adb")
#: A job's ``runtime`` as people write it (case-insensitive) → a runtime's name.
RUNTIME_ALIASES: dict[str, str] = {
    "ort": "ort",
    "onnxruntime": "ort",
    "onnx": "ort",
    "tflite": "tflite",
    "litert": "tflite",
    "ai-edge-litert": "tflite",
    "adb": "adb",
    "android": "adb",
}
#: How the caches stand before each timed run: as left (``warm``), all evicted (``cold``), the L2 evicted (``l2``,
#: the last-level cache kept); :mod:`profiler.runtimes.coldcache` does the evicting.
CACHE_MODES = ("warm", "cold", "l2")
#: The cache mode a runtime's LUTs are measured in unless told otherwise: the one whose raw sums
#: predicted whole FBNet-224 networks better here (``python bench/accuracy.py``, README): LiteRT's
#: blocks timed warm ran ~15% faster than inside a network, with the L2 evicted ~6%; onnxruntime's
#: warm blocks were within ±10% of every network, with the L2 evicted ~18% too slow.
DEFAULT_CACHE_MODES: dict[str, str] = {"ort": "warm", "tflite": "l2", "adb": "warm"}
#: onnxruntime's graph optimisation levels.
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
#: The keys of a job's ``options`` that are settings (the others are the job's work: ``entries``, ``validation``).
SETTING_OPTIONS = ("protocol", "xnnpack", "optimization", "cache_mode")
#: The most threads a job may ask for.
MAX_THREADS = 1024
#: The longest runtime name.
MAX_RUNTIME_NAME = 64


def canonical_runtime(name: str | None) -> str | None:
    """``ort``, ``tflite`` or ``adb`` for a runtime name or alias (case-insensitive); None when unknown."""
    return None if name is None else RUNTIME_ALIASES.get(name.strip().lower())


def default_cache_mode(runtime: str) -> str:
    """The cache mode LUTs of ``runtime`` (a name or alias) default to."""
    return DEFAULT_CACHE_MODES.get(canonical_runtime(runtime) or runtime, "warm")


def _count(low: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if is_whole(value) and value >= low else f"expected a whole number >= {low}, got {value!r}"

    return check


def _seconds(*, positive: bool) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if is_finite_number(value) and (value > 0 if positive else value >= 0):
            return None
        return f"expected a finite number of seconds {'> 0' if positive else '>= 0'}, got {value!r}"

    return check


def _positive(value: Any) -> str | None:
    return None if is_finite_number(value) and value > 0 else f"expected a finite number > 0, got {value!r}"


def _probability(value: Any) -> str | None:
    try:
        check_probability(value, "confidence")
    except FieldError as exc:
        return exc.message
    return None


def _any_int(value: Any) -> str | None:
    return None if is_whole(value) else f"expected a whole number, got {value!r}"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


#: The measurement protocol's fields a job may set (those of :class:`profiler.protocol.ProtocolConfig`), each
#: with its check (a message when the value cannot be used, else None).
PROTOCOL_FIELDS: dict[str, Callable[[Any], str | None]] = {
    "warmup_runs": _count(0),
    "warmup_s": _seconds(positive=False),
    "entry_warmup_s": _seconds(positive=False),
    "target_rel_ci": _positive,
    "confidence": _probability,
    "time_cap_s": _seconds(positive=True),
    "slice_s": _seconds(positive=False),
    "min_runs_per_pass": _count(1),
    "sentinel_slice_s": _seconds(positive=False),
    "min_passes": _count(0),
    "pass_warmup_runs": _count(0),
    "sentinel_threshold": _positive,
    "max_redo": _count(0),
    "seed": _any_int,
    "normalize": _bool,
}


@dataclass(frozen=True)
class JobSettings:
    """What a profiling job is measured with; checked when made (:class:`~searchspace.fields.FieldError`).

    ``runtime`` is kept as given (``onnxruntime``, ``ort``, ``LiteRT``...) and
    must be a known name or alias (:attr:`runtime_name` is the canonical one);
    ``threads`` None lets the agent choose; ``protocol`` holds the protocol
    fields the job sets (the others take their defaults); ``xnnpack`` applies
    to LiteRT and adb jobs only, ``optimization`` to onnxruntime jobs only;
    ``cache_mode`` None is warm.
    """

    runtime: str = "onnxruntime"
    threads: int | None = None
    protocol: Mapping[str, Any] = field(default_factory=dict, hash=False)
    xnnpack: bool | None = None
    optimization: str | None = None
    cache_mode: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.runtime, str) or not 0 < len(self.runtime) <= MAX_RUNTIME_NAME:
            raise FieldError("runtime", f"expected a runtime name, got {self.runtime!r}")
        name = canonical_runtime(self.runtime)
        if name is None:
            raise FieldError(
                "runtime",
                f"runtime {self.runtime!r} is not one an agent runs; known: {', '.join(RUNTIMES)} "
                f"(or {', '.join(a for a in RUNTIME_ALIASES if a not in RUNTIMES)})",
            )
        if self.threads is not None and not (is_whole(self.threads) and 1 <= self.threads <= MAX_THREADS):
            raise FieldError("threads", f"expected a whole number from 1 to {MAX_THREADS}, got {self.threads!r}")
        if not isinstance(self.protocol, Mapping):
            raise FieldError("options.protocol", "expected an object of protocol fields")
        for key, value in self.protocol.items():
            check = PROTOCOL_FIELDS.get(key)
            if check is None:
                raise FieldError(
                    f"options.protocol.{key}", f"no protocol field of that name; known: {', '.join(PROTOCOL_FIELDS)}"
                )
            problem = check(value)
            if problem:
                raise FieldError(f"options.protocol.{key}", problem)
        object.__setattr__(self, "protocol", MappingProxyType(dict(self.protocol)))
        if self.xnnpack is not None:
            if not isinstance(self.xnnpack, bool):
                raise FieldError("options.xnnpack", f"expected true or false, got {self.xnnpack!r}")
            if name not in ("tflite", "adb"):
                raise FieldError("options.xnnpack", "only LiteRT and adb jobs have an XNNPACK setting")
        if self.optimization is not None:
            if self.optimization not in OPTIMIZATION_LEVELS:
                raise FieldError(
                    "options.optimization",
                    f"unknown optimisation level {self.optimization!r}; known: {', '.join(OPTIMIZATION_LEVELS)}",
                )
            if name != "ort":
                raise FieldError("options.optimization", "only onnxruntime jobs have an optimisation level")
        if self.cache_mode is not None and self.cache_mode not in CACHE_MODES:
            raise FieldError(
                "options.cache_mode", f"unknown cache mode {self.cache_mode!r}; known: {', '.join(CACHE_MODES)}"
            )

    @property
    def runtime_name(self) -> str:
        """The runtime's canonical name: ``ort``, ``tflite`` or ``adb``."""
        name = canonical_runtime(self.runtime)
        assert name is not None  # checked when made
        return name

    @property
    def measured_cache_mode(self) -> str:
        """The cache mode entries are measured in (``warm`` when the job names none)."""
        return self.cache_mode or "warm"

    def options(self) -> dict[str, Any]:
        """The job's ``options`` that are settings, as stored (only those given)."""
        out: dict[str, Any] = {}
        if self.protocol:
            out["protocol"] = dict(self.protocol)
        for name in ("xnnpack", "optimization", "cache_mode"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"runtime", "threads", "options"}``: the job's stored form, what the HTTP API carries."""
        return {"runtime": self.runtime, "threads": self.threads, "options": self.options()}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, strict: bool = True) -> JobSettings:
        """The settings of ``doc`` (:meth:`to_dict`'s form, or a job record: other keys are left alone).

        ``strict`` refuses ``options`` keys that are no setting (a request
        making a job); without it they are passed over (a stored job, whose
        ``entries`` and ``validation`` the store wrote), and so are XNNPACK
        and optimisation settings of a runtime that has none (older servers
        stored them; no agent used them). A bad value is a
        :class:`~searchspace.fields.FieldError` naming the field.
        """
        options = doc.get("options")
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise FieldError("options", "expected an object")
        if strict:
            for key in options:
                if key not in SETTING_OPTIONS:
                    raise FieldError(
                        f"options.{key}", f"no job setting of that name; known: {', '.join(SETTING_OPTIONS)}"
                    )
        runtime = doc.get("runtime", "onnxruntime")
        protocol = options.get("protocol")
        xnnpack, optimization = options.get("xnnpack"), options.get("optimization")
        if not strict:  # older servers stored settings of another runtime, which no agent ever used
            name = canonical_runtime(runtime) if isinstance(runtime, str) else None
            xnnpack = xnnpack if name in ("tflite", "adb") else None
            optimization = optimization if name == "ort" else None
        return cls(
            runtime=runtime,
            threads=doc.get("threads"),
            protocol={} if protocol is None else protocol,
            xnnpack=xnnpack,
            optimization=optimization,
            cache_mode=options.get("cache_mode"),
        )
