"""The benchmark's outputs: a terminal table, a markdown table, the JSON file and a chart.

Everything reads the results dict the runner builds (see :func:`render_table` for its
shape). Any measurement may be missing or None -- a skipped phase, a backend without
an index to build -- and shows as "—".
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.columns import Columns
from rich.console import Console
from rich.table import Table

DASH = "—"
TIMES = "\u00d7"  # MULTIPLICATION SIGN, as in sizes (n times dim) and ratios
SIDES = ("vectorstore", "raw")  # compared; a case may add sides measured for reference (pgbench)
_CONCURRENCY = ("1", "4", "8", "16")
_SELECTIVITY = ("50", "10", "1")
_COLOURS = {"vectorstore": "#1f77b4", "raw": "#ff7f0e"}
_MARKERS = {"vectorstore": "o", "raw": "s"}


# -- reading the results ----------------------------------------------------------


def _get(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...``, or None when any step is missing or not a mapping.

    Keys are looked up as given and, for numeric keys, as ints too (``{1: ...}`` before a JSON round trip).
    """
    for key in path:
        if not isinstance(value, Mapping):
            return None
        if key in value:
            value = value[key]
            continue
        try:
            value = value.get(int(key))
        except ValueError:
            return None
    return value


def _num(value: Any) -> float | None:
    """A finite number as a float, else None (missing, None, NaN, bools and strings alike)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _cases(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    cases = results.get("cases") if isinstance(results, Mapping) else None
    if not isinstance(cases, list | tuple):
        return []
    return [case for case in cases if isinstance(case, Mapping)]


def _keys(mappings: Iterable[Any], default: tuple[str, ...], *, descending: bool) -> list[str]:
    """The union of the mappings' keys as strings, in numeric order; ``default`` when there are none."""
    found: dict[str, None] = {}
    for mapping in mappings:
        if isinstance(mapping, Mapping):
            found.update(dict.fromkeys(str(key) for key in mapping))
    keys = list(found) or list(default)

    def order(key: str) -> tuple[int, float, str]:
        try:
            return (0, float(key), key)
        except ValueError:
            return (1, 0.0, key)

    numeric = sorted((k for k in keys if order(k)[0] == 0), key=order, reverse=descending)
    return numeric + [k for k in keys if order(k)[0] == 1]


def _sides(case: Mapping[str, Any]) -> list[str]:
    """The case's sides: vectorstore and raw, then any other it measured (pgbench's ceiling)."""
    found = _get(case, "sides")
    extra = [str(name) for name in found if str(name) not in SIDES] if isinstance(found, Mapping) else []
    return [*SIDES, *extra]


def _side_values(cases: Iterable[Mapping[str, Any]], key: str) -> list[Any]:
    return [_get(case, "sides", side, key) for case in cases for side in _sides(case)]


# -- formatting -------------------------------------------------------------------


def fmt_spread(values: Any) -> str:
    """``min-max`` (an en dash between) of several samples (one sample or none: a dash)."""
    if not isinstance(values, list | tuple) or len(values) < 2:
        return DASH
    numbers = [x for x in map(_num, values) if x is not None]
    return f"{fmt_number(min(numbers))}\u2013{fmt_number(max(numbers))}" if len(numbers) >= 2 else DASH


def fmt_number(value: Any) -> str:
    """About three significant figures, thousands separated: 12,345 / 123 / 12.3 / 1.23 / 0.123."""
    x = _num(value)
    if x is None:
        return DASH
    size = abs(x)
    if size >= 1000:
        return f"{x:,.0f}"
    if size >= 100:
        return f"{x:.0f}"
    if size >= 10:
        return f"{x:.1f}"
    if size >= 1:
        return f"{x:.2f}"
    return f"{x:#.3g}" if x else "0"


def fmt_recall(value: Any) -> str:
    x = _num(value)
    return DASH if x is None else f"{x:.3f}"


def fmt_percent(value: Any) -> str:
    """A share in 0..1 as an integer percentage."""
    x = _num(value)
    return DASH if x is None else f"{round(x * 100)}%"


def fmt_ratio(value: Any) -> str:
    x = _num(value)
    return DASH if x is None else f"{x:.2f}{TIMES}"


def case_title(case: Mapping[str, Any]) -> str:
    """``"postgres clustered 10,000\u00d7384"`` (backend, dataset, n times dim)."""
    n, dim = _num(case.get("n")), _num(case.get("dim"))
    size = f"{n:,.0f}" if n is not None else DASH
    width = f"{dim:.0f}" if dim is not None else DASH
    return f"{case.get('backend') or DASH} {case.get('dataset') or DASH} {size}{TIMES}{width}"


def _size(case: Mapping[str, Any]) -> str:
    return case_title(case).rsplit(" ", 1)[-1]


def meta_line(results: Mapping[str, Any]) -> str:
    """One line on what was measured where: versions, Python, CPUs and the run's parameters."""
    meta = results.get("meta") if isinstance(results, Mapping) else None
    if not isinstance(meta, Mapping):
        return ""
    parts: list[str] = []
    versions = meta.get("versions")
    if isinstance(versions, Mapping):
        parts += [f"{name} {version}" for name, version in versions.items() if version is not None]
    if meta.get("python"):
        parts.append(f"Python {meta['python']}")
    if meta.get("platform"):
        parts.append(str(meta["platform"]))
    if meta.get("cpus") is not None:
        parts.append(f"{meta['cpus']} CPUs")
    params = meta.get("params")
    if isinstance(params, Mapping) and params:
        parts.append(" ".join(f"{key}={value}" for key, value in params.items()))
    if meta.get("started"):
        parts.append(f"started {meta['started']}")
    return " · ".join(parts)


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """One line per case with its ratios as given, e.g.
    ``"postgres clustered 10,000\u00d7384: search p50 1.04\u00d7 raw, load 0.95\u00d7 raw"``."""
    lines = []
    for case in _cases(results):
        ratios = case.get("ratios")
        if isinstance(ratios, Mapping) and ratios:
            text = ", ".join(f"{str(key).replace('_', ' ')} {fmt_ratio(value)} raw" for key, value in ratios.items())
        else:
            text = "no ratios"
        lines.append(f"{case_title(case)}: {text}")
    return lines


# -- the terminal table -------------------------------------------------------------

def _metric_rows(case: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """(label, [a cell per side: vectorstore, raw, others]) for every metric of one case."""
    sides = [_get(case, "sides", side) for side in _sides(case)]
    rows: list[tuple[str, Callable[[Any], str], tuple[str, ...]]] = [
        ("load (vectors/s)", fmt_number, ("load_vps",)),
        ("load, every round", fmt_spread, ("load_vps_samples",)),
        ("index build (s)", fmt_number, ("index_build_s",)),
        ("search p50 (ms)", fmt_number, ("latency_ms", "p50")),
        ("search p95 (ms)", fmt_number, ("latency_ms", "p95")),
        ("search p99 (ms)", fmt_number, ("latency_ms", "p99")),
        ("server's part, p50 (ms)", fmt_number, ("server_ms",)),
        ("recall@10", fmt_recall, ("recall_at_10",)),
        ("search_many (q/s)", fmt_number, ("search_many_qps",)),
    ]
    for workers in _keys((_get(side, "concurrent_qps") for side in sides), _CONCURRENCY, descending=False):
        rows.append((f"concurrent {TIMES}{workers} (q/s)", fmt_number, ("concurrent_qps", workers)))
        if any(_get(side, "concurrent_qps_samples", workers) for side in sides):
            rows.append((f"  {TIMES}{workers}, every round", fmt_spread, ("concurrent_qps_samples", workers)))
    for pct in _keys((_get(side, "filtered") for side in sides), _SELECTIVITY, descending=True):
        rows.append((f"filtered {pct}% p50 (ms)", fmt_number, ("filtered", pct, "p50_ms")))
        rows.append((f"filtered {pct}% with k hits", fmt_percent, ("filtered", pct, "full_k_share")))
    return [(label, [fmt(_get(side, *path)) for side in sides]) for label, fmt, path in rows]


def case_table(case: Mapping[str, Any]) -> Table:
    """One case as a rich table: a row per metric, a column per side."""
    table = Table(title=case_title(case), title_style="bold", header_style="bold")
    table.add_column("metric", no_wrap=True)
    for side in _sides(case):
        table.add_column(side, justify="right", no_wrap=True)
    for label, cells in _metric_rows(case):
        table.add_row(label, *cells)
    return table


def render_table(results: dict[str, Any], console: Console) -> None:
    """Print the run's metadata, a table per case (side by side where the terminal is wide
    enough), then each case's ratios."""
    meta = meta_line(results)
    if meta:
        console.print(meta, style="dim", highlight=False)
    cases = _cases(results)
    if not cases:
        console.print("no cases measured")
        return
    console.print(Columns([case_table(case) for case in cases], padding=(1, 2)))
    console.print()
    console.print("[bold]vectorstore vs raw[/bold]")
    for line in summary_lines(results):
        console.print(f"  {line}", highlight=False, markup=False)


# -- markdown ---------------------------------------------------------------------


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def markdown_table(results: dict[str, Any]) -> str:
    """The same numbers as GitHub markdown: a row per case and side, then the ratios per case."""
    cases = _cases(results)
    workers = _keys(_side_values(cases, "concurrent_qps"), _CONCURRENCY, descending=False)
    pcts = _keys(_side_values(cases, "filtered"), _SELECTIVITY, descending=True)
    header = ["backend", "dataset", f"n{TIMES}dim", "side", "load (vec/s)", "build (s)", "p50 (ms)", "p95 (ms)",
              "p99 (ms)", "server p50 (ms)", "recall@10", "search_many (q/s)"]
    header += [f"q/s {TIMES}{w}" for w in workers]
    header += [f"filter {p}%: p50 ms (k hits)" for p in pcts]
    right = [False] * 4 + [True] * (len(header) - 4)
    lines = [_md_row(header), _md_row("---:" if r else "---" for r in right)]
    for case in cases:
        for side_name in _sides(case):
            side = _get(case, "sides", side_name)
            row = [str(case.get("backend") or DASH), str(case.get("dataset") or DASH), _size(case), side_name,
                   fmt_number(_get(side, "load_vps")), fmt_number(_get(side, "index_build_s")),
                   fmt_number(_get(side, "latency_ms", "p50")), fmt_number(_get(side, "latency_ms", "p95")),
                   fmt_number(_get(side, "latency_ms", "p99")), fmt_number(_get(side, "server_ms")),
                   fmt_recall(_get(side, "recall_at_10")),
                   fmt_number(_get(side, "search_many_qps"))]
            row += [fmt_number(_get(side, "concurrent_qps", w)) for w in workers]
            for p in pcts:
                latency = fmt_number(_get(side, "filtered", p, "p50_ms"))
                share = fmt_percent(_get(side, "filtered", p, "full_k_share"))
                row.append(DASH if latency == DASH and share == DASH else f"{latency} ({share})")
            lines.append(_md_row(row))
    ratio_keys = list(dict.fromkeys(str(key) for case in cases
                                    if isinstance(case.get("ratios"), Mapping) for key in case["ratios"]))
    if ratio_keys:
        lines += ["", _md_row(["backend", "dataset", f"n{TIMES}dim", *ratio_keys]),
                  _md_row(["---"] * 3 + ["---:"] * len(ratio_keys))]
        for case in cases:
            ratios = case.get("ratios")
            lines.append(_md_row([str(case.get("backend") or DASH), str(case.get("dataset") or DASH), _size(case),
                                  *(fmt_ratio(_get(ratios, key)) for key in ratio_keys)]))
    return "\n".join(lines) + "\n"


# -- files ------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, paths and sets, as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(results: dict[str, Any], path: Path) -> None:
    """``results`` as indented JSON at ``path``, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=_jsonable) + "\n", encoding="utf-8")


def _curve(side: Any) -> tuple[list[float], list[float], list[str]]:
    """(recall, p50 ms, label) of the side's sweep points, or of its headline measurement without a sweep."""
    xs: list[float] = []
    ys: list[float] = []
    labels: list[str] = []
    sweep = _get(side, "sweep")
    for point in sweep if isinstance(sweep, list | tuple) else ():
        x, y = _num(_get(point, "recall_at_10")), _num(_get(point, "p50_ms"))
        if x is not None and y is not None and y > 0:
            xs.append(x)
            ys.append(y)
            labels.append(str(_get(point, "knob") or ""))
    if not xs:
        x, y = _num(_get(side, "recall_at_10")), _num(_get(side, "latency_ms", "p50"))
        if x is not None and y is not None and y > 0:
            xs, ys, labels = [x], [y], [""]
    return xs, ys, labels


def write_chart(results: dict[str, Any], path: Path) -> Path | None:
    """A PNG of p50 latency (log scale) against recall@10: a subplot per case, a line per side
    through its sweep points (or its one headline point). None when matplotlib is not installed."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]  # noqa: F401  (the optional extra)
        from matplotlib.backends.backend_agg import (  # type: ignore[import-not-found,unused-ignore]
            FigureCanvasAgg,
        )
        from matplotlib.figure import Figure  # type: ignore[import-not-found,unused-ignore]
        from matplotlib.ticker import FuncFormatter, LogLocator  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    cases = _cases(results)
    count = max(1, len(cases))
    cols = 1 if count == 1 else 2 if count in (2, 4) else 3
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(5.0 * cols, 3.8 * rows), layout="constrained")
    FigureCanvasAgg(fig)  # render with Agg without touching pyplot's global backend
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax in axes[len(cases):]:
        ax.set_axis_off()
    if not cases:
        axes[0].text(0.5, 0.5, "no cases measured", ha="center", va="center")
    for ax, case in zip(axes, cases, strict=False):
        ax.set_title(case_title(case), fontsize=10)
        ax.set_xlabel("recall@10")
        ax.set_ylabel("p50 latency (ms)")
        plotted = False
        recalls: list[float] = []
        for side_name in SIDES:
            xs, ys, labels = _curve(_get(case, "sides", side_name))
            if not xs:
                continue
            plotted = True
            recalls += xs
            ax.plot(xs, ys, marker=_MARKERS[side_name], color=_COLOURS[side_name], label=side_name,
                    linewidth=1.5, markersize=5)
            for x, y, label in zip(xs, ys, labels, strict=True):
                if label:
                    ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6,
                                color=_COLOURS[side_name])
        if plotted:
            ax.set_yscale("log")
            # Plain numbers (0.5, 1, 2, 5) instead of 5 x 10^-1, at 1-2-5 steps.
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda _v, _pos: ""))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            # At least 0.05 of recall wide, never past 1, and plain tick labels (no "+1" offset).
            low = min(min(recalls) - 0.01, 0.95)
            ax.set_xlim(low, 1.0 + (1.0 - low) * 0.05)
            ax.ticklabel_format(axis="x", useOffset=False)
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
        else:
            ax.text(0.5, 0.5, "no measurements", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("latency vs recall")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    return path
