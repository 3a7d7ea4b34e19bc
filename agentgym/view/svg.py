"""Charts as SVG drawn on the server: lines with optional bands, several series overlaid.

Why server-side SVG and not a charting script: the pages need a handful of line charts,
which take ~100 lines here; a script would be a vendored dependency to keep current, and
pages without scripts cannot run anything a trajectory smuggles in (the viewer shows model
output, which is untrusted). Every label is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "line_chart"]

#: Colours of successive series (matplotlib's tab10, which the PNG plots use).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


@dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float] | None = None  # the band, when there is one
    high: Sequence[float] | None = None
    dashed: bool = False


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round ticks from low to high."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.2g}"


def line_chart(
    series: Sequence[Series],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    y_range: tuple[float, float] | None = None,
    width: int = 520,
    height: int = 300,
) -> str:
    """An SVG line chart of `series` (each with its band when given), with axes, ticks and
    a legend; an empty chart says "no data"."""
    left, right, top, bottom = 56, 12, 28, 44
    pw, ph = width - left - right, height - top - bottom
    xs = [x for s in series for x, y in zip(s.x, s.y, strict=False) if _finite(x, y)]
    ys = [y for s in series for y in s.y if _finite(y)]
    for s in series:
        if s.low is not None and s.high is not None:
            ys += [v for v in (*s.low, *s.high) if _finite(v)]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" class="title">{escape(title)}</text>',
    ]
    if not xs:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(out)
    x0, x1 = min(xs), max(xs)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = y_range or (min(ys), max(ys))
    if y0 == y1:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (min(max(y, y0), y1) - y0) / (y1 - y0)) * ph

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{py(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        out.append(f'<text x="{px(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(
        f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>'
    )
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        if s.low is not None and s.high is not None:
            band = [(x, lo, hi) for x, lo, hi in zip(s.x, s.low, s.high, strict=False) if _finite(x, lo, hi)]
            if band:
                upper = " ".join(f"{px(x):.1f},{py(hi):.1f}" for x, _, hi in band)
                lower = " ".join(f"{px(x):.1f},{py(lo):.1f}" for x, lo, _ in reversed(band))
                out.append(f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.18" stroke="none"/>')
        pts = [(x, y) for x, y in zip(s.x, s.y, strict=False) if _finite(x, y)]
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for x, y in pts if len(pts) <= 40 else []:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>')
        ly = top + 12 + 14 * k
        out.append(
            f'<line x1="{left + 8}" x2="{left + 24}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{left + 28}" y="{ly}" class="legend">{escape(s.label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
