"""``hwlut verify``: the architecture a search chose, measured end to end against what was promised.

``hwlut verify --result runs/x/search_result.json --lut lut.json`` exports the
search's architecture (a ``--target-latency`` search's target architecture,
:mod:`searcher.target`, else the argmax; or ``--which``), measures it here on
the LUT's runtime and thread count with the protocol, with the LUT's own
sentinel entry timed in the same passes, and prints the measured latency
against the LUT's raw sum and calibrated prediction, the same comparison
adjusted for the machine's drift since the LUT was built (the sentinel now
against its reference in the LUT), and, for a ``--target-latency`` search,
whether the measured latency is within ±5% of the target (exit 3 when not,
so a script can tell). Before measuring, a calm gate times the sentinel
until its recent medians agree within 5% (at most ``--calm-wait`` seconds,
default 20; the wait is printed). ``--json`` prints one JSON object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from searchspace import ArchitectureError, LatencyTable, MissingEntries

from .console import out_console
from .errors import EXIT_FAILED, EXIT_REFUSED, fail
from .options import PROTOCOL_DEFAULTS, ProtocolOptions, lut_file_option, protocol_options

__all__ = ["lut_runtime", "verify"]

RUNTIMES = ("ort", "tflite")
#: Exit status when a target-latency search missed its target on the device.
TARGET_MISSED = 3


def lut_runtime(table: LatencyTable, runtime: str | None, threads: int | None) -> tuple[str, Any]:
    """The runtime (name, instance) that measured ``table``, with ``runtime``/``threads`` overriding it."""
    from .profile import runtime_from_options

    lut_rt = table.provenance.get("runtime") or {}
    name = runtime or lut_rt.get("runtime") or "ort"
    if name not in RUNTIMES:
        raise typer.BadParameter(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}", param_hint="--runtime")
    rt = runtime_from_options(
        name,
        threads or int(lut_rt.get("threads") or 1),
        xnnpack=bool(lut_rt.get("xnnpack", True)),
        optimization=str(lut_rt.get("optimization", "all")),
    )
    return name, rt


@protocol_options
def verify(
    result: Annotated[
        Path, typer.Option("--result", exists=True, dir_okay=False, help="A search's search_result.json.")
    ],
    lut: Annotated[Path, typer.Option("--lut", exists=True, dir_okay=False, help="The LUT file the search used.")],
    which: Annotated[
        str,
        typer.Option(
            "--which",
            help="auto (a target-latency search's target architecture, else the argmax), argmax, target, "
            "or sample:N (one of the result's samples).",
        ),
    ] = "auto",
    runtime: Annotated[str | None, typer.Option("--runtime", help="ort or tflite (default: the LUT's).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Runtime threads (default: the LUT's).")] = None,
    calm_wait: Annotated[
        float,
        typer.Option("--calm-wait", min=0.0, help="Seconds the calm gate may wait for a steady sentinel (0: off)."),
    ] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    protocol: ProtocolOptions = PROTOCOL_DEFAULTS,  # the six protocol options (see protocol_options)
) -> None:
    """Measure the architecture a search chose, end to end, against the LUT's and the search's promise."""
    from profiler.runtimes import RuntimeUnavailable
    from profiler.verify import SearchMismatch, verify_search

    err = Console(stderr=True)
    try:
        doc = json.loads(result.read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise typer.BadParameter(f"{result}: not a search result ({exc})", param_hint="--result") from None
    table = lut_file_option(lut, "--lut")
    name, rt = lut_runtime(table, runtime, threads)
    try:
        with err.status(f"exporting and measuring the searched network on {name}"):
            out = verify_search(doc, table, rt, protocol.config(), which=which, calm_wait_s=calm_wait)
    except (SearchMismatch, ArchitectureError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--result/--which") from None
    except MissingEntries as exc:
        fail(f"{lut} lacks {len(exc.keys)} entries of this network", EXIT_REFUSED)
    except RuntimeUnavailable as exc:
        fail(str(exc), EXIT_REFUSED)
    except RuntimeError as exc:
        fail(str(exc), EXIT_FAILED)
    out = {**out, "result": str(result), "lut": str(lut)}
    if as_json:
        typer.echo(json.dumps(out, indent=1))
    else:
        _print(out_console(), out)
    if out["target_kept"] is False:
        raise typer.Exit(TARGET_MISSED)


def _ms(us: float | None) -> str:
    return "      n/a" if us is None else f"{us / 1000:9.3f}"


def _err(pct: float | None) -> str:
    return "n/a" if pct is None else f"{pct:+.1f}%"


def _print(console: Console, out: dict[str, Any]) -> None:
    m = out["measurement"]
    stats, rt, s = m["stats"], m["runtime"], out["sentinel"]
    say = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    say(
        f"[bold]{out['space']}-{out['resolution']}[/] {out['which']} of {out['result']} on {rt.get('runtime')} "
        f"{rt.get('runtime_version')}, {rt.get('threads')} thread(s)"
    )
    say(f"  arch          {out['arch']}")
    calm = out.get("calm")
    if calm is not None:
        state = "calm" if calm["calm"] else "[yellow]NOT calm[/] (measured anyway)"
        spread = "n/a" if calm["spread"] is None else f"{calm['spread']:.1%}"
        say(
            f"  calm gate     {state} after {calm['waited_s']:.1f} s, {calm['rounds']} rounds: sentinel spread "
            f"{spread} (threshold {calm['threshold']:.0%})"
        )
    say(
        f"  measured      {_ms(out['measured_us'])} ms  (median of {stats['count']} runs, {stats['passes']} passes, "
        f"{m['sentinel'].get('passes_redone')} redone)"
    )
    say(f"  LUT sum       {_ms(out['predicted_us'])} ms  error {_err(out['error_pct'])}")
    cal = out["calibration"]
    label = f"calibrated ({cal.get('kind', 'linear')})" if isinstance(cal, dict) else "calibrated"
    say(f"  {label:<13} {_ms(out['calibrated_us'])} ms  error {_err(out['calibrated_error_pct'])}")
    if s["drift"] is None:
        say(f"  drift         sentinel {s['key']}: the LUT recorded no reference, no drift-adjusted comparison")
    else:
        say(
            f"  drift         sentinel {s['key']} now {s['now_us']:.1f} µs, at the LUT's build {s['lut_us']:.1f} µs: "
            f"the machine is {abs(s['drift']):.1%} {'slower' if s['drift'] > 0 else 'faster'}"
        )
        say(
            f"  drift-adjusted{_ms(out['drift_adjusted_us'])} ms  LUT sum error {_err(out['drift_adjusted_error_pct'])}"
            f", calibrated {_err(out['drift_adjusted_calibrated_error_pct'])}"
        )
    if out["target_us"] is not None:
        kept = "kept" if out["target_kept"] else "[red]MISSED[/]"
        say(
            f"  target        {_ms(out['target_us'])} ms  measured {_err(out['target_error_pct'])} off: {kept} "
            "(±5% promised)"
        )
