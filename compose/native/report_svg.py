"""Inline SVG charts for the demo report: line charts over time, horizontal bars, a trace waterfall.

Plain SVG strings, no JavaScript and no external resources, so report.html stays self-contained and
renders offline. Every plotted value is an element of its own (a circle per line point, a rect per bar or
span) carrying data-value, so a test can find the data points in the rendered DOM."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT = 630, 270
LEFT, RIGHT, TOP, BOTTOM = 56, 190, 38, 30


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]  # (seconds since the start of the window, value)


@dataclass(frozen=True)
class WaterfallSpan:
    name: str
    service: str
    start_ms: float
    duration_ms: float
    depth: int
    error: bool


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def short(value: float) -> str:
    """A compact axis label: 0.00012, 1.5, 12k."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}"


def _frame(kind: str, title: str, body: str, height: int = HEIGHT, empty: bool = False) -> str:
    cls = f"chart {kind}" + (" empty" if empty else "")
    return (
        f'<svg class="{cls}" data-title="{esc(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">'
        f'<text x="8" y="18" class="title">{esc(title)}</text>{body}</svg>'
    )


def _no_data(kind: str, title: str) -> str:
    return _frame(
        kind, title, f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" class="nodata">no data</text>', empty=True
    )


def line_chart(title: str, series: Sequence[Series], unit: str = "") -> str:
    series = [s for s in series if s.points]
    if not series:
        return _no_data("line", title)
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x0, x1 = min(xs), max(xs)
    y1 = max(ys) if max(ys) > 0 else 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w if x1 > x0 else LEFT + plot_w / 2

    def py(y: float) -> float:
        return TOP + plot_h - y / y1 * plot_h

    parts = [
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{esc(short(y1))}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 10}">{x0:.0f} s</text>',
        f'<text class="tick" x="{LEFT + plot_w}" y="{HEIGHT - 10}" text-anchor="end">{x1:.0f} s</text>',
    ]
    if unit:
        parts.append(f'<text class="tick" x="8" y="{TOP - 10}">{esc(unit)}</text>')
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        parts.append(
            f'<polyline class="series" data-series="{esc(s.name)}" fill="none" stroke="{colour}" '
            f'stroke-width="2" points="{pts}"/>'
        )
        for x, y in s.points:
            parts.append(
                f'<circle class="pt" data-series="{esc(s.name)}" data-value="{y!r}" cx="{px(x):.1f}" '
                f'cy="{py(y):.1f}" r="2.5" fill="{colour}"><title>{esc(s.name)} at {x:.0f} s: '
                f"{esc(short(y))}</title></circle>"
            )
        ly = TOP + 12 * i
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 10}" y="{ly - 8}" width="9" height="9" fill="{colour}"/>'
            f'<text class="legend" x="{WIDTH - RIGHT + 24}" y="{ly + 1}">{esc(s.name[:30])}</text>'
        )
    return _frame("line", title, "".join(parts))


def bar_chart(title: str, bars: Sequence[tuple[str, float]], unit: str = "", decimals: int = 6) -> str:
    bars = sorted((b for b in bars if b[1] > 0), key=lambda b: (-b[1], b[0]))
    if not bars:
        return _no_data("bar", title)
    height = TOP + 22 * len(bars) + 10
    top = max(v for _, v in bars)
    label_w, plot_w = 190, WIDTH - 190 - 110
    parts = []
    for i, (label, value) in enumerate(bars):
        y = TOP + 22 * i
        w = max(1.0, value / top * plot_w)
        parts.append(
            f'<text class="legend" x="{label_w - 6}" y="{y + 13}" text-anchor="end">{esc(label[:30])}</text>'
            f'<rect class="bar" data-label="{esc(label)}" data-value="{value!r}" x="{label_w}" y="{y}" '
            f'width="{w:.1f}" height="16" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text class="tick" x="{label_w + w + 4}" y="{y + 13}">{value:.{decimals}f} {esc(unit)}</text>'
        )
    return _frame("bar", title, "".join(parts), height=height)


def waterfall(title: str, spans: Sequence[WaterfallSpan]) -> str:
    if not spans:
        return _no_data("waterfall", title)
    end = max(s.start_ms + s.duration_ms for s in spans) or 1.0
    label_w, plot_w = 250, WIDTH - 250 - 70
    height = TOP + 20 * len(spans) + 24
    parts = [
        f'<text class="tick" x="{label_w}" y="{height - 6}">0 ms</text>',
        f'<text class="tick" x="{label_w + plot_w}" y="{height - 6}" text-anchor="end">{end:.1f} ms</text>',
    ]
    for i, s in enumerate(spans):
        y = TOP + 20 * i
        x = label_w + s.start_ms / end * plot_w
        w = max(1.5, s.duration_ms / end * plot_w)
        colour = "#d62728" if s.error else PALETTE[s.depth % len(PALETTE)]
        name = ("  " * s.depth + s.name)[:40]
        parts.append(
            f'<text class="legend" x="6" y="{y + 12}" xml:space="preserve">{esc(name)}</text>'
            f'<rect class="span" data-name="{esc(s.name)}" data-value="{s.duration_ms!r}" x="{x:.1f}" '
            f'y="{y}" width="{w:.1f}" height="14" fill="{colour}"><title>{esc(s.service)}: {esc(s.name)} '
            f"{s.duration_ms:.2f} ms</title></rect>"
            f'<text class="tick" x="{min(x + w + 3, WIDTH - 60):.1f}" y="{y + 12}">'
            f"{s.duration_ms:.1f} ms</text>"
        )
    return _frame("waterfall", title, "".join(parts), height=height)
