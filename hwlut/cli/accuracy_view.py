"""How the CLI prints a LUT's accuracy: figures with their intervals, the chosen calibration, strata, verdict.

Shared by ``hwlut validate``, ``hwlut lut show``, ``hwlut verify`` and the
quickstart. Input is the JSON a report's ``to_dict()``/``summary()`` writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console

__all__ = ["accuracy_lines", "choice_line", "figures_line", "print_validation", "verdict_lines"]


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:+6.1f}%"


def _range(iv: Mapping[str, Any] | None, fmt: str) -> str:
    if not isinstance(iv, Mapping) or iv.get("low") is None or iv.get("high") is None:
        return ""
    return f" [{format(iv['low'], fmt)}, {format(iv['high'], fmt)}]"


def figures_line(label: str, fig: Mapping[str, Any] | None, ints: Mapping[str, Any] | None = None) -> str:
    """One prediction's figures; with ``ints`` the 95% lower bounds (≥) and bootstrap intervals ([low, high])."""
    if fig is None:
        return f"  {label:<24} n/a"
    ints = ints if isinstance(ints, Mapping) else {}
    w5, w10 = ints.get("within_5"), ints.get("within_10")
    lb5 = f" (≥{w5['lower95']:.0%})" if isinstance(w5, Mapping) else ""
    lb10 = f" (≥{w10['lower95']:.0%})" if isinstance(w10, Mapping) else ""
    rank = (
        f"Spearman {fig['spearman']:.3f}{_range(ints.get('spearman'), '.3f')}, Kendall {fig['kendall']:.3f}"
        if fig.get("spearman") is not None and fig.get("kendall") is not None
        else "ranks n/a"
    )
    return (
        f"  {label:<24} n={fig['n']:<3} ±5% {fig['within_5']:6.1%}{lb5}  ±10% {fig['within_10']:6.1%}{lb10}  "
        f"MAPE {fig['mape']:5.2f}%{_range(ints.get('mape'), '.2f')}  RMSPE {fig['rmspe']:5.2f}%  "
        f"bias {fig['mean_error_pct']:+5.2f}%  {rank}"
    )


def choice_line(rep: Mapping[str, Any]) -> str | None:
    """Which calibration cross-validation chose, how, and by how much (None for a report without a choice)."""
    choice = rep.get("choice")
    if not isinstance(choice, Mapping):
        return None
    cal = rep.get("calibration")
    served = (
        f"serves {cal['kind']}: {float(cal['slope']):.4f} x sum {float(cal.get('intercept_us', 0.0)):+.1f} µs"
        if isinstance(cal, Mapping)
        else "serves the raw sum (no calibration)"
    )
    scores = choice.get("scores") or {}
    tried = ", ".join(f"{k} {scores[k]['mape']:.2f}%" for k in choice.get("tried") or [] if k in scores)
    return (
        f"  calibration chosen by {choice.get('method')} (seed {choice.get('seed')}): {choice.get('chosen')}, "
        f"CV MAPE {float(choice.get('margin_mape') or 0.0):.2f} points below the raw sum; {served}. "
        f"Why: {choice.get('reason')}. CV MAPE: {tried}"
    )


def verdict_lines(accuracy: Mapping[str, Any] | None, noise: Mapping[str, Any] | None = None) -> list[str]:
    """``verdict: trusted|rough|not validated`` and its reasons (:func:`searchspace.intervals.verdict`)."""
    from searchspace.intervals import verdict

    v = verdict(accuracy, noise)
    return [f"  verdict   {v['level'].upper()}", *(f"    - {r}" for r in v["reasons"])]


def _strata_lines(rep: Mapping[str, Any]) -> list[str]:
    strata = rep.get("strata")
    if not isinstance(strata, list) or not strata:
        return []
    out = ["  per stratum of the LUT-sum range (fastest first): n, raw ±10%, calibrated ±10%, calibrated MAPE"]
    for s in strata:
        raw, cal = s.get("raw"), s.get("calibrated")
        figs = (
            f"raw {raw['within_10']:5.0%}  calibrated {cal['within_10']:5.0%}  MAPE {cal['mape']:5.2f}%"
            if raw and cal
            else "-"
        )
        out.append(f"    {s['lo_us'] / 1000:8.3f}-{s['hi_us'] / 1000:8.3f} ms  n={s['n']:<3} {figs}")
    return out


def accuracy_lines(rep: Mapping[str, Any], noise: Mapping[str, Any] | None = None) -> list[str]:
    """The figures of every prediction, the choice, the strata and the verdict of one report or summary."""
    ints = rep.get("intervals") or {}
    over = rep.get("overhead_per_invocation_us")
    quick = " (QUICK: a first look)" if rep.get("quick") else ""
    lines = [figures_line("raw LUT sum" + quick, rep.get("raw"), ints.get("raw"))]
    if rep.get("raw_held_out") is not None:
        lines.append(figures_line("raw, held-out only", rep.get("raw_held_out")))
    if rep.get("overhead") is not None:
        label = f"sum-(n-1)x{over:.1f}µs" if over is not None else "overhead-corrected"
        lines.append(figures_line(label, rep.get("overhead")))
    label = "calibrated, out of fold" if rep.get("choice") else "calibrated, held-out"
    lines.append(figures_line(label, rep.get("calibrated"), ints.get("calibrated")))
    if rep.get("nested") is not None:
        lines.append(figures_line("  (choice redone per fold)", rep.get("nested")))
    said = choice_line(rep)
    if said:
        lines.append(said)
    elif isinstance(rep.get("calibration"), Mapping):
        cal = rep["calibration"]
        lines.append(
            f"  calibration {cal.get('kind', 'linear')}: {float(cal['slope']):.4f} x sum "
            f"{float(cal.get('intercept_us', 0.0)):+.1f} µs, fitted on {len(cal.get('fitted_on') or [])} networks"
        )
    lines += _strata_lines(rep)
    lines += verdict_lines(rep, noise)
    return lines


def print_validation(console: Console, doc: dict[str, Any]) -> None:
    """A validation document (``ValidationResult.to_dict()`` and ``lut``/``plot``): rows, figures, verdict."""
    rep = doc["report"]
    rt = doc["runtime"]
    plan = doc.get("plan") or {}
    draw = f", {plan['draw']} draw" + (f" over {plan['strata']} strata" if plan.get("strata") else "")
    console.print(
        f"[bold]{doc['lut']}[/] ({rep['meta'].get('lut_cache_mode')} caches) against {rep['networks']} networks "
        f"of {rep['meta'].get('space')}-{rep['meta'].get('resolution')} on {rt.get('runtime')} "
        f"{rt.get('runtime_version')}, {rt.get('threads')} thread(s); seed {plan.get('seed')}"
        + (draw if plan.get("draw") else ""),
        highlight=False,
    )
    console.print(
        f"  {'measured ms':>11} {'LUT sum':>9} {'err':>7} {'-overhd':>7} {'calibr.':>7}  {'role':<11} arch",
        highlight=False,
    )
    for row in rep["rows"]:
        console.print(
            f"  {row['measured_us'] / 1000:11.3f} {row['raw_us'] / 1000:9.3f} {_pct(row['raw_error_pct'])} "
            f"{_pct(row['overhead_error_pct'])} {_pct(row['calibrated_error_pct'])}  {row['role'] or '-':<11} "
            f"{row['arch']}",
            highlight=False,
            soft_wrap=True,
        )
    emit: Callable[[str], None] = lambda line: console.print(line, highlight=False, soft_wrap=True)  # noqa: E731
    for line in accuracy_lines(rep, (rep.get("meta") or {}).get("noise")):
        emit(line)
    if doc.get("plot"):
        emit(f"  plot: {doc['plot']}")
