"""Sparklines as plain text: one string of block characters, drawn in one style.

Textual's ``Sparkline`` widget colours every bar on its own, so each cell
carries its own colour escape — about ten times the bytes of the same line
drawn in one style, and Conn runs over SSH for days. Here a sparkline is a
string ("▁▂▅█·▇"): the widget that shows it takes its colour from CSS, so a
whole line costs one style change on the wire, and an unchanged line (the
same shape shifted by a constant history) causes no repaint at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text
from textual.events import Resize
from textual.reactive import reactive
from textual.widget import Widget

BARS = "▁▂▃▄▅▆▇█"
"""Eight levels, lowest first."""

MISSING = "·"
"""Drawn for a point without a value (no data, stale, source down): a gap, never a low bar."""


def sparkline(
    values: Sequence[float | None],
    width: int | None = None,
    *,
    low: float = 0.0,
    high: float | None = None,
    missing: str = MISSING,
) -> str:
    """The newest ``width`` points of ``values`` as block characters, oldest first.

    Bars are scaled from ``low`` (default 0, so a flat 180 ms line does not
    look like wild jitter between 179 and 181) to ``high`` (default: the
    largest value shown). Values outside the range are clamped; a value below
    ``low`` extends the range down rather than disappearing.

    Args:
        values: points oldest first; None (or NaN/inf) where there was no value.
        width: the most characters to return; None for every point.
        low: the value drawn as the lowest bar.
        high: the value drawn as the highest bar; None for the largest shown.
        missing: the character for a point without a value.

    Returns:
        A string of ``min(len(values), width)`` characters.
    """
    if width is not None:
        if width <= 0:
            return ""
        values = values[-width:]
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return missing * len(values)
    top = max(present) if high is None else high
    bottom = min(low, min(present))
    span = top - bottom
    chars = []
    for value in values:
        if value is None or not math.isfinite(value):
            chars.append(missing)
        elif span <= 0:
            chars.append(BARS[0])
        else:
            level = round((min(value, top) - bottom) / span * (len(BARS) - 1))
            chars.append(BARS[max(0, min(len(BARS) - 1, level))])
    return "".join(chars)


class SparkText(Widget):
    """A one-line sparkline as one-style text, as wide as the widget (newest points at the right).

    The widget keeps the points and renders the line for its current width;
    the rendered line is the reactive, so new points that draw the same line
    repaint nothing.
    """

    DEFAULT_CSS = """
    SparkText {
        height: 1;
        width: 1fr;
    }
    """

    line: reactive[str] = reactive("", layout=False)
    """The characters on screen."""

    def __init__(
        self, *, min_width: int = 6, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._points: tuple[float | None, ...] = ()
        self._high: float | None = None
        self._min_width = min_width

    def show(self, points: tuple[float | None, ...], *, high: float | None = None) -> None:
        """Draw ``points`` (oldest first) at the current width, ``high`` as a full bar."""
        self._points = points
        self._high = high
        self._redraw()

    def on_resize(self, event: Resize) -> None:
        self._redraw()

    def _redraw(self) -> None:
        width = self.size.width
        self.line = (
            sparkline(self._points, width, high=self._high) if width >= self._min_width else ""
        )

    def render(self) -> Text:
        # No style of its own: the widget's CSS colour covers the whole line.
        return Text(self.line, no_wrap=True, end="")
