"""Marks and styles for health and signal states, shared by the table and the panels.

Every state is told apart by a word or a symbol as well as by colour, so it
reads the same in a monochrome terminal, with ``NO_COLOR``, and to someone
who cannot tell red from green.

The services table renders Rich ``Text`` cells and takes ``HEALTH_STYLE`` and
``STATE_STYLE``; the panels colour by CSS class (:func:`state_class`) so their
colours come from the theme (``$success``, ``$warning``, ``$error``,
``$accent``, ``$text-muted``) — see ``ServiceDetail.DEFAULT_CSS``.
"""

from __future__ import annotations

HEALTH_STYLE = {
    "up": ("● up", "green"),
    "degraded": ("▲ degraded", "yellow"),
    "down": ("✖ down", "bold red"),
    "unknown": ("? unknown", "dim"),
}
"""Health state -> (symbol and word, Rich style) for table cells."""

STATE_MARK = {
    "ok": "",
    "warning": " ▲",
    "critical": " ✖",
    "no_data": "",
    "stale": " ⌛",
    "source_down": " ⚠",
}
"""Signal state -> the mark after a value ("no data" is its own word, so no mark)."""

STATE_STYLE = {
    "ok": "",
    "warning": "yellow",
    "critical": "bold red",
    "no_data": "dim",
    "stale": "dim",
    "source_down": "magenta",
}
"""Signal state -> Rich style for table cells."""

STALE_MARK = "⌛"
"""Shown with the word "stale" wherever a value is older than three intervals."""

STATE_CLASSES = (
    "-s-ok", "-s-warning", "-s-critical", "-s-no-data", "-s-stale", "-s-source-down",
    "-s-up", "-s-degraded", "-s-down", "-s-unknown", "-s-muted",
)  # fmt: skip
"""Every class :func:`state_class` can return; a widget carries at most one."""


def state_class(state: str) -> str:
    """The CSS class that colours a widget for a signal or health ``state`` ("" for none)."""
    if not state:
        return ""
    name = "-s-" + state.replace("_", "-")
    return name if name in STATE_CLASSES else ""



TROUBLE_STYLE = {
    "down": "bold $error",
    "critical": "$error",
    "warning": "$warning",
    "stale": "italic $text-muted",
    "ok": "$success",
}
"""Trouble -> Textual markup style (theme colours) for the header's summary."""
