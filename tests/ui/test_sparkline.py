"""The one-style text sparkline: the mapping to block characters, and what goes on the wire."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets import Sparkline

from console.ui.widgets.sparkline import BARS, MISSING, SparkText, sparkline

POINTS = [120.0, 180.0, None, 950.0, 30.0, 0.0, 400.0, 700.0] * 8


def test_maps_zero_to_the_largest_value_onto_eight_levels() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == BARS
    assert sparkline([0.0, 7.0]) == "▁█"


def test_missing_points_are_gaps_never_low_bars() -> None:
    assert sparkline([None, 4.0, math.nan, 8.0, math.inf]) == f"{MISSING}▅{MISSING}█{MISSING}"
    assert sparkline([None, None, None]) == MISSING * 3
    assert sparkline([None, 5.0], missing=" ") == " █"


def test_scale_starts_at_zero_so_jitter_does_not_look_like_a_spike() -> None:
    # 179..181 ms drawn from 0: a flat, full line, not a zigzag from ▁ to █.
    assert sparkline([179.0, 181.0, 180.0]) == "███"
    assert sparkline([0.0, 0.0, 0.0]) == "▁▁▁"


def test_width_keeps_the_newest_points() -> None:
    assert sparkline([7.0, 0.0, 7.0, 0.0], width=2) == "█▁"
    assert sparkline([1.0, 2.0], width=10) == "▅█"
    assert sparkline([1.0, 2.0], width=0) == ""
    assert sparkline([], width=5) == ""


def test_high_clamps_and_a_value_below_low_extends_the_range() -> None:
    assert sparkline([0.0, 50.0, 500.0], high=100.0) == "▁▅█"
    assert sparkline([-7.0, 0.0]) == "▁█"


@given(
    st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=1e9)), max_size=80),
    st.one_of(st.none(), st.integers(min_value=0, max_value=100)),
)
def test_length_alphabet_and_order(values: list[float | None], width: int | None) -> None:
    line = sparkline(values, width)
    shown = values if width is None else values[-width:] if width else []
    assert len(line) == len(shown)
    assert set(line) <= set(BARS + MISSING)
    levels = [(v, BARS.index(c)) for v, c in zip(shown, line, strict=True) if v is not None]
    for a, level_a in levels:
        for b, level_b in levels:
            if a <= b:
                assert level_a <= level_b, "a larger value is never drawn lower"


class _Both(App[None]):
    CSS = "SparkText, Sparkline { width: 64; height: 1; }"

    def compose(self) -> ComposeResult:
        yield SparkText(id="ours")
        yield Sparkline([0.0 if v is None else v for v in POINTS], id="textual")

    def on_mount(self) -> None:
        self.query_one(SparkText).show(tuple(POINTS))


def _wire_bytes(app: App[None], segments: list[Segment]) -> int:
    """What the terminal receives for one line: Textual writes a strip rendered like this."""
    return len(Strip(segments).render(app.console).encode())


async def test_one_style_per_line_and_a_fraction_of_the_bytes() -> None:
    app = _Both()
    async with app.run_test(size=(80, 4)) as pilot:
        await pilot.pause()
        ours = list(app.query_one("#ours").render_line(0))
        theirs = list(app.query_one("#textual").render_line(0))
        assert len({s.style for s in ours if s.text.strip()}) == 1
        assert "".join(s.text for s in ours) == sparkline(POINTS, 64)
        ours_bytes, theirs_bytes = _wire_bytes(app, ours), _wire_bytes(app, theirs)
        assert ours_bytes * 4 < theirs_bytes, (ours_bytes, theirs_bytes)


async def test_redraws_for_its_width_and_not_for_an_equal_line() -> None:
    app = _Both()
    async with app.run_test(size=(80, 4)) as pilot:
        await pilot.pause()
        spark = app.query_one(SparkText)
        assert spark.line == sparkline(POINTS, 64)
        spark.styles.width = 10
        await pilot.pause()
        assert spark.line == sparkline(POINTS, 10)
        # A constant history shifted by one point draws the same line: no change, no repaint.
        spark.show((5.0,) * 30)
        before = spark.line
        spark.show((5.0,) * 31)
        assert spark.line == before == "█" * 10


def test_a_calm_line_under_its_threshold_stays_low() -> None:
    """Scaled to the critical level, a steady 10 ms is the floor, 900 ms nearly full."""
    from console.model.live import SignalValue, ThresholdView
    from console.ui.widgets.panel_data import ceiling

    threshold = ThresholdView(warning=500.0, critical=1000.0, direction="above", for_seconds=0.0)
    p95 = SignalValue(
        name="p95", label="p95", value=10.0, unit="ms", source="probe", at=0.0,
        state="ok", detail="", threshold=threshold,
    )
    calm = (10.0,) * 8
    high = ceiling(p95, calm)
    assert high == 1000.0
    assert sparkline(calm, high=high) == "▁" * 8
    assert sparkline((900.0,) * 4, high=ceiling(p95, (900.0,) * 4)) == "▇" * 4
    assert ceiling(p95, (10.0, 2000.0)) == 2000.0, "a peak past the threshold still fits"
    no_threshold = p95.model_copy(update={"threshold": None})
    assert ceiling(no_threshold, calm) is None
