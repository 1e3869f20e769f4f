"""Command-line options that several commands share: the measurement protocol's knobs, LUT files, a server's LUTs.

The six protocol options are declared here once: a command decorated with
:func:`protocol_options` takes them all and receives them as one
``protocol: ProtocolOptions`` value (``protocol.config()`` is the
:class:`~profiler.protocol.ProtocolConfig` they describe).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from searchspace.jobs import CACHE_MODES, OPTIMIZATION_LEVELS, RUNTIME_ALIASES, RUNTIMES

if TYPE_CHECKING:
    from pathlib import Path

    from profiler.protocol import ProtocolConfig
    from searchspace import LatencyTable

__all__ = [
    "DEFAULT_MIN_PASSES",
    "DEFAULT_PRECISION",
    "DEFAULT_SLICE_S",
    "DEFAULT_TIME_CAP",
    "DEFAULT_WARMUP_RUNS",
    "DEFAULT_WARMUP_TIME",
    "LUT_FORMATS",
    "PROTOCOL_DEFAULTS",
    "CacheModeOpt",
    "CalmWaitOpt",
    "MinPassesOpt",
    "OptimizationOpt",
    "PrecisionOpt",
    "ProtocolOptions",
    "RuntimeOpt",
    "SliceOpt",
    "TimeCapOpt",
    "WarmupRunsOpt",
    "WarmupTimeOpt",
    "choices",
    "lut_file_option",
    "protocol_config",
    "protocol_options",
    "server_lut_option",
]

#: ``--calm-wait``: the longest wait (s) for a steady sentinel before a build (``HWLUT_CALM_WAIT``; 0: no gate).
CalmWaitOpt = Annotated[
    float,
    typer.Option(
        "--calm-wait",
        min=0.0,
        envvar="HWLUT_CALM_WAIT",
        help="Max seconds to wait for a steady sentinel before the build (half, <=10, per batch; 0: off).",
    ),
]

#: :class:`profiler.protocol.ProtocolConfig`'s defaults, as the commands' option defaults (kept equal by a test;
#: importing the protocol here would slow every command's start).
DEFAULT_PRECISION = 0.01
DEFAULT_TIME_CAP = 3.0
DEFAULT_SLICE_S = 0.01
DEFAULT_MIN_PASSES = 12
DEFAULT_WARMUP_RUNS = 10
DEFAULT_WARMUP_TIME = 0.5

#: :data:`lut_store.formats.FORMATS` (kept equal by a test; importing the store would slow every command's start).
LUT_FORMATS = ("hwlut", "csv", "hwnasbench", "proxyless", "ofa")


def choices(values: tuple[str, ...]) -> Callable[[str], list[str]]:
    """Shell completion of an option whose values are ``values``."""

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete


RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime",
        help=f"{', '.join(RUNTIMES)} (onnxruntime, LiteRT, a phone over adb); also "
        f"{', '.join(a for a in RUNTIME_ALIASES if a not in RUNTIMES)}.",
        autocompletion=choices(RUNTIMES),
        metavar="RUNTIME",
    ),
]
OptimizationOpt = Annotated[
    str | None,
    typer.Option(
        help=f"onnxruntime graph optimisation: {', '.join(OPTIMIZATION_LEVELS)} (default: all).",
        autocompletion=choices(OPTIMIZATION_LEVELS),
        metavar="LEVEL",
    ),
]
CacheModeOpt = Annotated[
    str | None,
    typer.Option(
        help=f"{', '.join(CACHE_MODES)}: caches as left, all evicted, or the L2 evicted before each timed run "
        "(default: the runtime's: l2 for tflite, warm otherwise).",
        autocompletion=choices(CACHE_MODES),
        metavar="MODE",
    ),
]

PrecisionOpt = Annotated[
    float, typer.Option(min=1e-6, help="Stop measuring a model when its median's 95% CI is within ± this share.")
]
TimeCapOpt = Annotated[float, typer.Option(min=1e-3, help="Measuring time cap per model, seconds.")]
SliceOpt = Annotated[float, typer.Option("--slice", min=0.0, help="Timed seconds per model and pass.")]
MinPassesOpt = Annotated[int, typer.Option(min=1, help="Passes before the CI rule may stop a model.")]
WarmupRunsOpt = Annotated[int, typer.Option(min=0, help="Warm-up runs (the sentinel's and each model's).")]
WarmupTimeOpt = Annotated[float, typer.Option(min=0.0, help="Warm-up seconds of the sentinel per batch.")]


def protocol_config(
    *,
    precision: float,
    time_cap: float,
    slice_s: float,
    min_passes: int,
    warmup_runs: int,
    warmup_time: float,
    **extra: Any,
) -> ProtocolConfig:
    """The :class:`ProtocolConfig` these options describe (``extra``: further fields as they are)."""
    from profiler.protocol import ProtocolConfig

    return ProtocolConfig(
        warmup_runs=warmup_runs,
        warmup_s=warmup_time,
        target_rel_ci=precision,
        time_cap_s=time_cap,
        slice_s=slice_s,
        min_passes=min_passes,
        **extra,
    )


@dataclass(frozen=True)
class ProtocolOptions:
    """The six protocol options as a command received them (see :func:`protocol_options`)."""

    precision: float = DEFAULT_PRECISION
    time_cap: float = DEFAULT_TIME_CAP
    slice_s: float = DEFAULT_SLICE_S
    min_passes: int = DEFAULT_MIN_PASSES
    warmup_runs: int = DEFAULT_WARMUP_RUNS
    warmup_time: float = DEFAULT_WARMUP_TIME

    def config(self, **extra: Any) -> ProtocolConfig:
        """The :class:`ProtocolConfig` these options describe (``extra``: further fields as they are)."""
        return protocol_config(**asdict(self), **extra)


#: The protocol options' defaults: the default of a command's ``protocol`` parameter.
PROTOCOL_DEFAULTS = ProtocolOptions()

#: Each protocol option: its parameter name (``--precision``, ``--time-cap``, ``--slice``...) and declaration.
_PROTOCOL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("precision", PrecisionOpt),
    ("time_cap", TimeCapOpt),
    ("slice_s", SliceOpt),
    ("min_passes", MinPassesOpt),
    ("warmup_runs", WarmupRunsOpt),
    ("warmup_time", WarmupTimeOpt),
)

_Command = TypeVar("_Command", bound=Callable[..., Any])


def protocol_options(command: _Command) -> _Command:
    """Give ``command`` the six protocol options; it receives them as its ``protocol`` parameter.

    In the command's signature (and so in its ``--help``) the options take the
    place of ``protocol: ProtocolOptions = PROTOCOL_DEFAULTS``, with those defaults.
    """
    signature = inspect.signature(command, eval_str=True)
    params = list(signature.parameters.values())
    at = [p.name for p in params].index("protocol")
    defaults, kind = PROTOCOL_DEFAULTS, inspect.Parameter.POSITIONAL_OR_KEYWORD
    options = [
        inspect.Parameter(name, kind, default=getattr(defaults, name), annotation=opt)
        for name, opt in _PROTOCOL_OPTIONS
    ]
    shown = signature.replace(parameters=[*params[:at], *options, *params[at + 1 :]])

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name, _ in _PROTOCOL_OPTIONS if name in kwargs}
        return command(*args, protocol=ProtocolOptions(**given), **kwargs)

    wrapper.__signature__ = shown  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{p.name: p.annotation for p in shown.parameters.values()},
        "return": shown.return_annotation,
    }
    return wrapper  # type: ignore[return-value]


def lut_file_option(path: Path, param_hint: str) -> LatencyTable:
    """The hwlut LUT file at ``path``; a file that is none is a usage error naming ``param_hint``."""
    from searchspace import LatencyTable, LutFileError

    try:
        return LatencyTable.load(path)
    except (LutFileError, KeyError, TypeError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint=param_hint) from None


def server_lut_option(server: str, device: str, job: str, token: str | None) -> tuple[int, LatencyTable]:
    """A server's LUT ``job`` of ``device`` and the job id it came from.

    On failure it names the server and exits: 1 when the server cannot be reached, 2 when it refuses
    or answers something that is no hwlut LUT.
    """
    from lutclient import HwlutClient, HwlutError
    from searchspace import LutFileError

    from .errors import message_of

    try:
        with HwlutClient(server, token=token) as client:
            return client.lut_and_id(device, job)
    except HwlutError as exc:
        message, code = message_of(exc) or (str(exc), 1)
        typer.echo(f"error: LUT {job} of {device!r}: {message}", err=True)
        raise typer.Exit(code) from None
    except (LutFileError, KeyError, TypeError, ValueError) as exc:
        typer.echo(f"error: {server}: LUT {job} of {device!r} is no hwlut LUT: {exc}", err=True)
        raise typer.Exit(2) from None
