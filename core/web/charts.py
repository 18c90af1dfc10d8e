"""Charts drawn on the server as inline SVG: no script, no library, nothing fetched.

Colours come from CSS classes (``chart-series-0``, ``chart-series-1``, ...) in
``wispbill.css``, since the Content-Security-Policy refuses inline styles. Each bar or point
carries a ``<title>`` so that hovering (or a long press) shows its figure, and the chart
has a text summary for screen readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 200
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 8, 10, 28


@dataclass(frozen=True)
class Series:
    """One named row of values, one per label of the chart."""

    name: str
    values: Sequence[int | float]


def _nice_max(value: float) -> float:
    """A round number at or above ``value`` for the top of the axis."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def bar_chart(labels: Sequence[str], series: Sequence[Series], *, title: str,
              fmt: Callable[[float], str] = lambda v: f"{v:,.0f}", every: int | None = None) -> Markup:
    """A grouped bar chart of ``series`` over ``labels``; ``fmt`` writes a value for people.

    ``every`` shows only every n-th label under the axis (all when the labels fit).
    """
    n = max(len(labels), 1)
    top = _nice_max(max((v for s in series for v in s.values), default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / n
    bar_w = max(slot * 0.8 / max(len(series), 1), 1)
    every = every or max(1, round(n / 12))
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i in range(5):  # grid lines and axis figures
        value = top * i / 4
        y = PAD_TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="chart-grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="chart-axis" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{escape(fmt(value))}</text>')
    for j, label in enumerate(labels):
        x0 = PAD_LEFT + slot * j + slot * 0.1
        for k, s in enumerate(series):
            value = s.values[j] if j < len(s.values) else 0
            h = plot_h * (value / top) if top else 0
            x = x0 + bar_w * k
            y = PAD_TOP + plot_h - h
            parts.append(f'<rect class="chart-series-{k}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}"><title>{escape(label)} · {escape(s.name)}: {escape(fmt(value))}'
                         f'</title></rect>')
        if j % every == 0:
            parts.append(f'<text class="chart-axis" x="{x0 + slot * 0.4:.1f}" y="{HEIGHT - 8}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span class="chart-key chart-key-{k}">{escape(s.name)}</span>' for k, s in enumerate(series))
    summary = "; ".join(f"{s.name}: " + ", ".join(f"{lab} {fmt(v)}" for lab, v in zip(labels, s.values))
                        for s in series)
    return Markup(f'<figure class="chart-box">{"".join(parts)}<figcaption>{legend}'
                  f'<span class="visually-hidden">{escape(summary)}</span></figcaption></figure>')
