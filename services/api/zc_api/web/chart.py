"""The summary's chart as plain SVG shapes (no script; fill colours are attributes, which
the pages' Content-Security-Policy allows): one stacked bar per day, by lease state."""

from __future__ import annotations

from dataclasses import dataclass

from zc_api.summary.service import DAY_STATES, Day

COLOURS = {"active": "#15803d", "expired": "#b91c1c", "exempt": "#7c3aed", "reaped": "#d97706",
           "released": "#6b7280"}
LABELS = {"active": "Active", "expired": "Expired (waiting to be reaped)", "exempt": "Exempt",
          "reaped": "Reaped that day", "released": "Gone that day (released)"}

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 12, 36


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    x_labels: list[Label]
    y_labels: list[Label]
    grid: list[float]
    baseline: float
    left: int
    right: int
    empty: bool


def _scale_top(biggest: int) -> int:
    """A round number at or above ``biggest`` for the y axis."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000):
        if biggest <= step * 4:
            return max(step * ((biggest + step - 1) // step), step)
    return biggest


def stacked_bars(days: list[Day]) -> Chart:
    biggest = max((day.total for day in days), default=0)
    top = _scale_top(biggest)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = slot * 0.7
    bars: list[Bar] = []
    x_labels: list[Label] = []
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar_w) / 2
        y: float = TOP + plot_h
        for state in DAY_STATES:
            count = day.counts.get(state, 0)
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            bars.append(Bar(x=round(x, 1), y=round(y, 1), width=round(bar_w, 1), height=round(h, 1),
                            colour=COLOURS[state], title=f"{day.day:%b %d}: {count} {LABELS[state].lower()}"))
        if i % 2 == (len(days) - 1) % 2:  # every other day, ending today
            x_labels.append(Label(x=round(x + bar_w / 2, 1), y=HEIGHT - BOTTOM + 18, text=f"{day.day:%b %d}"))
    y_labels = [Label(x=LEFT - 6, y=round(TOP + plot_h - plot_h * v / top + 4, 1), text=str(v))
                for v in (0, top // 2, top)]
    grid = [round(TOP + plot_h - plot_h * v / top, 1) for v in (top // 2, top)]
    return Chart(width=WIDTH, height=HEIGHT, bars=bars, x_labels=x_labels, y_labels=y_labels, grid=grid,
                 baseline=TOP + plot_h, left=LEFT, right=WIDTH - RIGHT, empty=biggest == 0)
