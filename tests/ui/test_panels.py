"""The signal panels, driven by Pilot with fixed data: every state, both layouts, repaints.

The detail gets the room the dashboard gives it: 12 rows at 80x24 (under the
services table), 28 rows at 120x40.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from rich.cells import cell_len
from textual.widget import Widget

from console.model.live import ServiceLive, SignalValue
from console.ui.widgets.panel_data import (
    Shown,
    compare_data,
    errors_data,
    format_ratio,
    health_data,
    latency_data,
    value_text,
)
from console.ui.widgets.panels import (
    Age,
    Cell,
    ComparePanel,
    CompareRowView,
    ErrorsPanel,
    HealthPanel,
    LatencyPanel,
    SignalRowView,
    SignalsPanel,
)
from console.ui.widgets.service_detail import ServiceDetail
from console.ui.widgets.sparkline import SparkText
from tests.fixtures.panels import (
    NOW,
    DetailApp,
    canary_pair,
    live,
    named,
    scenarios,
    screen_text,
    signal,
    text_of,
    view,
    visible,
)

NARROW = ((80, 24), 12)
WIDE = ((120, 40), 28)
SIZES = pytest.mark.parametrize(("size", "rows"), [NARROW, WIDE], ids=["80x24", "120x40"])

NUMBERS = ".value, .ratio, .counts, .age, .state"
"""Cells that carry numbers or states: never cut, never outside the detail."""


def app_for(name: str, rows: int) -> DetailApp:
    shown, baseline = scenarios()[name]
    return DetailApp(shown, baseline=baseline, height=rows)


def cell(app: DetailApp, selector: str) -> Cell:
    return app.query_one(selector, Cell)


def texts(app: DetailApp, selector: str) -> list[str]:
    return [text_of(w) for w in app.query(selector) if visible(w)]


def assert_fits(app: DetailApp) -> None:
    """Every visible number is whole and inside the detail: no scrolling, no clipping."""
    detail = app.query_one(ServiceDetail).region
    for widget in app.query(Cell):
        if visible(widget):
            assert detail.contains_region(widget.region), f"outside: {text_of(widget)!r}"
    for widget in app.query(NUMBERS).results(Cell):
        if visible(widget):
            text = text_of(widget)
            assert cell_len(text) <= widget.region.width, f"cut: {text!r} in {widget.region}"


def row_of(app: DetailApp, kind: type[Widget], label: str) -> Widget:
    return next(r for r in app.query(kind) if text_of(r.query_one(".label", Cell)) == label)


# --- every state --------------------------------------------------------------------------


@SIZES
async def test_up(size: tuple[int, int], rows: int) -> None:
    app = app_for("up", rows)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert text_of(cell(app, "HealthPanel .state")) == "● up"
        assert cell(app, "HealthPanel .state").has_class("-s-up")
        assert text_of(cell(app, "HealthPanel .reason")) == "HTTP 200, 3 checks ok"
        assert text_of(cell(app, "HealthPanel .age")) == "for 4m · updated 2s ago"
        assert texts(app, "LatencyPanel .now .value") == ["p50 42.1 ms", "p95 180 ms", "p99 312 ms"]
        assert texts(app, "ErrorsPanel .now .value, ErrorsPanel .now .counts") == [
            "0.42%",
            "· 3 of 712 in 1m",
        ]
        assert texts(app, "SignalRowView .label") == ["cache hit", "memory", "breaker opens"]
        assert texts(app, "SignalRowView .value") == ["93.1%", "45.2%", "0"]
        assert texts(app, "SignalRowView .age") == ["1s", "1s", "1s"]
        assert app.query_one(ComparePanel).has_class("-empty")
        assert not visible(app.query_one(ComparePanel))
        assert_fits(app)


async def test_narrow_is_one_line_per_panel_and_drops_5m_first() -> None:
    app = app_for("up", 12)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        detail = app.query_one(ServiceDetail)
        assert detail.has_class("-narrow")
        lines = screen_text(app)
        assert lines[0].startswith(" checkout  ● up  HTTP 200, 3 checks ok")
        assert lines[0].endswith("for 4m · updated 2s ago")
        assert lines[1].startswith(" latency 1m    p50 42.1 ms")
        assert lines[2].startswith(" errors 1m     0.42% · 3 of 712 in 1m")
        assert lines[3].startswith(" cache hit     93.1%")
        assert not any(visible(w) for w in app.query(".five, .history"))
        inline = [s for s in app.query(SparkText) if visible(s)]
        assert len(inline) == 2
        assert all(s.has_class("inline") for s in inline)
        assert all(text_of(s) and len(text_of(s)) == s.region.width for s in inline)


async def test_wide_uses_the_space_boxes_5m_and_long_sparklines() -> None:
    app = app_for("up", 28)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.query_one(ServiceDetail).has_class("-wide")
        latency = app.query_one(LatencyPanel)
        assert texts(app, "LatencyPanel .five .value") == [
            "p50 40.0 ms",
            "p95 170 ms",
            "p99 290 ms",
        ]
        assert texts(app, "ErrorsPanel .five .value, ErrorsPanel .five .counts") == [
            "0.40%",
            "· 14 of 3,512 in 5m",
        ]
        health, errors = app.query_one(HealthPanel), app.query_one(ErrorsPanel)
        assert health.region.y == latency.region.y, "health and latency side by side"
        assert errors.region.y == app.query_one(SignalsPanel).region.y
        blocks = [s for s in app.query(SparkText) if visible(s)]
        assert all(s.has_class("block") for s in blocks)
        assert len(blocks) == 2
        assert len(text_of(blocks[0])) == 60, "the whole p95 history fits"
        assert "signals" in str(app.query_one(SignalsPanel).border_title)
        # The routine detail of an ok signal has room here: on a line of its own when
        # it is longer than what its row leaves, rather than cut.
        assert "metrics.cache_hit_rate in the health JSON" in texts(app, "SignalRowView .below")
        assert app.query_one(SignalsPanel).has_class("-two-line")
        assert_fits(app)


async def test_wide_details_stay_on_their_line_when_it_is_long_enough() -> None:
    app = app_for("up", 28)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        assert not app.query_one(SignalsPanel).has_class("-two-line")
        assert "metrics.cache_hit_rate in the health JSON" in texts(app, "SignalRowView .detail")
        assert texts(app, "SignalRowView .below") == []


@SIZES
async def test_degraded_with_warnings(size: tuple[int, int], rows: int) -> None:
    app = app_for("degraded", rows)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert text_of(cell(app, "HealthPanel .state")) == "▲ degraded"
        assert cell(app, "HealthPanel .state").has_class("-s-degraded")
        p95 = cell(app, "LatencyPanel .now .p95")
        assert text_of(p95) == "p95 620 ms ▲ > 500 ms", "a breached value shows its level"
        assert p95.has_class("-s-warning")
        assert text_of(cell(app, "ErrorsPanel .now .value")) == "1.26% ▲ > 1.00%"
        cache = row_of(app, SignalRowView, "cache hit").query_one(".value", Cell)
        assert text_of(cache) == "76.0% ▲"
        assert cache.has_class("-s-warning")
        assert_fits(app)


@SIZES
async def test_down_with_criticals(size: tuple[int, int], rows: int) -> None:
    app = app_for("down", rows)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert text_of(cell(app, "HealthPanel .state")) == "✖ down"
        assert cell(app, "HealthPanel .state").has_class("-s-down")
        assert texts(app, "LatencyPanel .now .value") == [
            "p50 42.1 ms",
            "p95 1.48 s ✖ > 1.00 s",
            "p99 2.01 s ✖",  # no threshold on p99: the mark, no level
        ]
        assert cell(app, "LatencyPanel .now .p99").has_class("-s-critical")
        assert text_of(cell(app, "ErrorsPanel .now .value")) == "11.4% ✖ > 5.00%"
        breaker = row_of(app, SignalRowView, "breaker opens").query_one(".value", Cell)
        assert text_of(breaker) == "7 ✖"
        assert breaker.has_class("-s-critical")
        assert_fits(app)


@SIZES
async def test_no_value_yet(size: tuple[int, int], rows: int) -> None:
    app = app_for("waiting", rows)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert text_of(cell(app, "HealthPanel .name")) == "search"
        assert text_of(cell(app, "HealthPanel .state")) == "? unknown"
        assert text_of(cell(app, "HealthPanel .reason")) == "waiting for the first probe"
        assert text_of(cell(app, "HealthPanel .age")) == "no value yet"
        assert texts(app, "LatencyPanel .now .value") == [
            "p50 no data",
            "p95 no data",
            "p99 no data",
        ]
        assert text_of(cell(app, "ErrorsPanel .now .value")) == "no data"
        assert app.query_one(SignalsPanel).has_class("-empty")
        assert_fits(app)


@SIZES
async def test_unknown_before_the_first_probe(size: tuple[int, int], rows: int) -> None:
    app = app_for("unknown", rows)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert text_of(cell(app, "HealthPanel .state")) == "? unknown"
        assert text_of(cell(app, "HealthPanel .age")) == "updated 2s ago"
        assert texts(app, "SignalRowView .value") == ["no data"] * 3
        assert texts(app, "SignalRowView .age") == ["—"] * 3
        assert texts(app, "SignalRowView .detail") == ["no probe yet"] * 3
        assert all(not text_of(s).strip() for s in app.query(SparkText))
        assert_fits(app)


@SIZES
async def test_no_data_is_never_zero(size: tuple[int, int], rows: int) -> None:
    app = app_for("no_data", rows)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        value = cell(app, "ErrorsPanel .now .value")
        assert text_of(value) == "no data"
        assert value.has_class("-s-no-data")
        assert text_of(cell(app, "ErrorsPanel .now .counts")) == "· 0 probes in 1m"
        assert texts(app, "LatencyPanel .now .value") == [
            "p50 no data",
            "p95 no data",
            "p99 no data",
        ]
        screen = "\n".join(screen_text(app))
        assert "0%" not in screen.replace("0.40%", ""), "0 of 0 must not read as 0%"
        assert_fits(app)


@SIZES
async def test_stale_by_word_and_symbol(size: tuple[int, int], rows: int) -> None:
    app = app_for("stale", rows)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        state = cell(app, "HealthPanel .state")
        assert text_of(state) == "⌛ stale · last ● up"
        assert state.has_class("-s-stale")
        age = cell(app, "HealthPanel .age")
        assert text_of(age) == "for 4m · updated 47s ago"
        assert age.has_class("-s-stale")
        assert texts(app, "LatencyPanel .now .value") == [
            "p50 42.1 ms ⌛",
            "p95 180 ms ⌛",
            "p99 312 ms ⌛",
        ]
        assert all(c.has_class("-s-stale") for c in app.query("LatencyPanel .now .value"))
        assert text_of(cell(app, "ErrorsPanel .now .value")) == "0.42% ⌛"
        assert texts(app, "SignalRowView .value") == ["93.1% ⌛", "45.2% ⌛", "0 ⌛"]
        assert_fits(app)


async def test_a_value_turns_stale_as_the_clock_moves() -> None:
    app = DetailApp(view(live()), height=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert text_of(cell(app, "HealthPanel .state")) == "● up"
        app.detail.now = NOW + 1  # updated 3s ago: three 1s intervals, not over
        await pilot.pause()
        assert text_of(cell(app, "HealthPanel .state")) == "● up"
        app.detail.now = NOW + 2
        await pilot.pause()
        assert text_of(cell(app, "HealthPanel .state")) == "⌛ stale · last ● up"
        assert text_of(cell(app, "LatencyPanel .now .p95")) == "p95 180 ms ⌛"


@SIZES
async def test_source_down_shows_why(size: tuple[int, int], rows: int) -> None:
    app = app_for("source_down", rows)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        queue = row_of(app, SignalRowView, "queue depth")
        value = queue.query_one(".value", Cell)
        assert text_of(value) == "source down ⚠"
        assert value.has_class("-s-source-down")
        # Wide, the details have a line of their own (the health JSON paths are long).
        detail = queue.query_one(".detail" if size == (80, 24) else ".below", Cell)
        assert visible(detail)
        assert text_of(detail) == "Prometheus: timeout after 5s"
        assert text_of(queue.query_one(".source", Cell)) == "prometheus"
        # The error rate comes from Prometheus too: down, with the probe counts kept.
        assert text_of(cell(app, "ErrorsPanel .now .value")) == "source down ⚠"
        assert text_of(cell(app, "ErrorsPanel .now .counts")) == "· probes: 3 of 712 in 1m"
        notes = texts(app, "ErrorsPanel .note")
        assert notes == ["Prometheus: HTTP 503 from /api/v1/query"]
        # The other panels keep working.
        assert text_of(cell(app, "LatencyPanel .now .p95")) == "p95 180 ms"
        assert_fits(app)


@SIZES
async def test_canary_next_to_its_baseline(size: tuple[int, int], rows: int) -> None:
    app = app_for("canary", rows)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        compare = app.query_one(ComparePanel)
        assert visible(compare)
        assert texts(app, "ComparePanel .header .value") == ["checkout-canary", "checkout"]

        def row(label: str) -> list[str]:
            found = row_of(app, CompareRowView, label)
            return [text_of(found.query_one(s, Cell)) for s in (".canary", ".baseline", ".ratio")]

        assert row("health") == ["▲ degraded", "● up", ""]
        assert row("p95") == ["612 ms ▲ > 500 ms", "340 ms", "×1.8"]
        assert row("errors") == ["1.26% ▲ > 1.00%", "0.14%", "×9.0"]
        assert row("cache hit") == ["88.4%", "93.1%", "×0.95"]
        assert row("breaker opens") == ["4 ▲", "0", "—"]  # against zero: no ratio, never ×∞
        assert row("canary share") == ["5.00%", "no data", "—"]
        assert texts(app, "CompareRowView .detail")[0] == "checks.redis = degraded"
        assert texts(app, "CompareRowView .detail")[-1] == "baseline has none"
        detail = app.query_one(ServiceDetail)
        if size == (80, 24):
            # The comparison has every signal row: the plain list would repeat it.
            assert not visible(app.query_one(SignalsPanel))
            assert texts(app, "CompareRowView .age") == ["2s"] + ["1s"] * 6
        else:
            assert detail.has_class("-wide")
            assert visible(app.query_one(SignalsPanel))
            assert "checkout-canary vs checkout" in str(compare.border_title)
        assert_fits(app)


async def test_a_stale_baseline_gives_no_ratio() -> None:
    canary, stable = canary_pair()
    stale_stable = dataclasses.replace(stable, updated_at=NOW - 30)
    app = DetailApp(canary, baseline=stale_stable, height=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert texts(app, "CompareRowView .ratio") == [""] + ["—"] * 6
        assert texts(app, "CompareRowView .baseline")[:2] == ["⌛ stale", "340 ms ⌛"]
        assert texts(app, "CompareRowView .detail")[1] == "baseline: no update for over 3 intervals"


async def test_tight_room_cuts_rows_before_the_comparison_header() -> None:
    """The header says which column is the canary: without it the values are unlabelled."""
    canary, stable = canary_pair()
    app = DetailApp(canary, baseline=stable, height=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        detail = app.query_one(ServiceDetail)
        assert not detail.has_class("-tight")
        assert texts(app, "ComparePanel .header .value") == ["checkout-canary", "checkout"]
        assert texts(app, "CompareRowView .label") == ["health", "p95", "errors", "cache hit", "memory"]
        assert texts(app, "ComparePanel .more") == ["+2 more not shown: a taller terminal shows them"]
        assert_fits(app)
        app.detail.styles.height = 5  # no room for a row and the "+N more" line under a header
        await pilot.pause()
        assert detail.has_class("-tight")
        assert not visible(app.query_one("ComparePanel .header"))
        assert_fits(app)


async def test_rows_that_do_not_fit_are_counted_not_cut() -> None:
    extra = (
        *named(),
        signal("queue", 12.0, unit="", source="prometheus", detail="from Prometheus"),
    )
    app = DetailApp(view(live(extra=extra)), height=6)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert texts(app, "SignalRowView .label") == ["cache hit", "memory"]
        assert texts(app, "SignalsPanel .more") == [
            "+2 more not shown: a taller terminal shows them"
        ]
        assert_fits(app)
        app.detail.styles.height = 12
        await pilot.pause()
        assert texts(app, "SignalRowView .label") == [
            "cache hit",
            "memory",
            "breaker opens",
            "queue",
        ]
        assert texts(app, "SignalsPanel .more") == []


async def test_a_canary_in_very_little_room() -> None:
    canary, stable = canary_pair()
    app = DetailApp(canary, baseline=stable, height=7)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert texts(app, "ComparePanel .header .value") == ["checkout-canary", "checkout"]
        assert texts(app, "CompareRowView .label") == ["health", "p95"]
        assert texts(app, "ComparePanel .more") == [
            "+5 more not shown: a taller terminal shows them"
        ]
        assert_fits(app)


# --- escaping -----------------------------------------------------------------------------


HOSTILE = "[bold red]x[/] \x1b[2Jgone \x1b]8;;http://evil\x07link"


@SIZES
async def test_markup_and_escape_sequences_appear_literally(
    size: tuple[int, int], rows: int
) -> None:
    hostile_signal = signal(
        "evil", None, unit="[b]u[/b]", label="[red]lbl\x1b[31m", source="prometheus",
        state="source_down", detail="Prometheus: [blink]x[/] \x1b[2J\x1b[H\r\nboom",
    )  # fmt: skip
    shown = view(live(health="down", reason=HOSTILE, extra=(hostile_signal, *named())))
    calm = DetailApp(view(live()), height=rows)
    app = DetailApp(shown, height=rows)
    async with calm.run_test(size=size) as pilot:
        await pilot.pause()
        calm_regions = [w.region for w in calm.query("LatencyPanel, ErrorsPanel, SignalRowView")]
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        reason = cell(app, "HealthPanel .reason")
        assert text_of(reason) == "[bold red]x[/] gone link"
        assert reason.region.height == 1
        row = app.query(SignalRowView).first()
        assert text_of(row.query_one(".label", Cell)) == "[red]lbl"
        assert text_of(row.query_one(".detail", Cell)) == "Prometheus: [blink]x[/]  boom"
        regions = [w.region for w in app.query("LatencyPanel, ErrorsPanel, SignalRowView")]
        assert regions[: len(calm_regions)] == calm_regions, "the layout holds"
        screen = "\n".join(screen_text(app))
        assert "\x1b" not in screen
        assert "\r" not in screen
        assert_fits(app)


# --- repaint only what changed --------------------------------------------------------------


@pytest.fixture
def repaints(monkeypatch: pytest.MonkeyPatch) -> list[Widget]:
    """Every widget that asks to be repainted, in order (Widget.refresh with repaint)."""
    seen: list[Widget] = []
    original = Widget.refresh

    def recording(self: Widget, *regions: object, repaint: bool = True, **kw: bool) -> Widget:
        if repaint or kw.get("layout"):
            seen.append(self)
        return original(self, *regions, repaint=repaint, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Widget, "refresh", recording)
    return seen


def _moved_on(row: ServiceLive, seconds: float, **changes: object) -> ServiceLive:
    """The same row a probe later: new times, the same rounded values (unless changed)."""
    signals = tuple(
        s.model_copy(update={"at": None if s.at is None else s.at + seconds}) for s in row.signals
    )
    updated = row.model_copy(
        update={"observed_at": (row.observed_at or NOW) + seconds, "signals": signals}
    )
    return updated.model_copy(update=changes)


async def test_the_clock_tick_repaints_only_ages(repaints: list[Widget]) -> None:
    app = DetailApp(view(live()), height=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        repaints.clear()
        app.detail.now = NOW + 0.4  # every age still reads the same
        await pilot.pause()
        assert repaints == []
        app.detail.now = NOW + 1
        await pilot.pause()
        assert repaints, "the ages moved on"
        assert all(isinstance(w, Age) for w in repaints), repaints
        assert text_of(cell(app, "HealthPanel .age")) == "for 4m · updated 3s ago"


async def test_a_new_probe_with_the_same_rounded_values_repaints_only_ages(
    repaints: list[Widget],
) -> None:
    first = live()
    app = DetailApp(view(first), height=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        repaints.clear()
        app.detail.view = view(_moved_on(first, 1.0), updated_at=NOW - 1)
        await pilot.pause()
        assert repaints, "the ages moved on"
        assert all(isinstance(w, Age) for w in repaints), repaints
        assert text_of(cell(app, "HealthPanel .age")) == "for 4m · updated 1s ago"


async def test_a_changed_value_repaints_its_own_cell(repaints: list[Widget]) -> None:
    first = live()
    app = DetailApp(view(first), height=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        repaints.clear()
        p95 = first.signal("p95")
        assert p95 is not None
        signals = tuple(
            s.model_copy(update={"value": 190.0}) if s.name == "p95" else s for s in first.signals
        )
        app.detail.view = view(first.model_copy(update={"signals": signals}))
        await pilot.pause()
        assert repaints == [cell(app, "LatencyPanel .now .p95")]
        assert text_of(repaints[0]) == "p95 190 ms"


async def test_switching_services_rebuilds_rows_and_back() -> None:
    canary, stable = canary_pair()
    app = DetailApp(view(live()), height=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.detail.view, app.detail.baseline = canary, stable
        await pilot.pause()
        assert len(app.query(CompareRowView)) == 7
        assert texts(app, "SignalRowView .label")[-1:] in ([], ["canary share"])
        app.detail.view, app.detail.baseline = view(live("search")), None
        await pilot.pause()
        assert app.query_one(ComparePanel).has_class("-empty")
        assert len(app.query(CompareRowView)) == 0
        assert texts(app, "SignalRowView .label") == ["cache hit", "memory", "breaker opens"]
        assert text_of(cell(app, "HealthPanel .name")) == "search"
        app.detail.view = None
        await pilot.pause()
        assert app.query_one(ServiceDetail).has_class("-empty")
        assert texts(app, ".empty") == ["select a service to see its signals"]


async def test_rapid_selection_changes_settle_on_the_last_one() -> None:
    canary, stable = canary_pair()
    choices = [(canary, stable), (view(live("search")), None), (view(live(extra=())), None)]
    app = DetailApp(view(live()), height=12)
    async with app.run_test(size=(80, 24)) as pilot:
        for i in range(30):
            app.detail.view, app.detail.baseline = choices[i % 3]
            await asyncio.sleep(0)  # let some mounts start, not finish
        await pilot.pause()
        app.detail.view, app.detail.baseline = choices[0]
        await pilot.pause()
        assert len(app.query(CompareRowView)) == 7
        assert texts(app, "CompareRowView .label")[:2] == ["health", "p95"]
        assert texts(app, "CompareRowView .age") == ["2s"] + ["1s"] * 6


async def test_rows_replaced_while_mounting_are_dropped_quietly() -> None:
    canary, stable = canary_pair()
    app = DetailApp(canary, baseline=stable, height=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.query_one(ComparePanel)
        other = compare_data(view(live("search")), stable, NOW)
        for _ in range(5):  # each assignment remounts every row, synchronously
            panel.data = other
            panel.data = compare_data(canary, stable, NOW)
        await pilot.pause()
        assert texts(app, "CompareRowView .label") == [
            "health", "p95", "errors", "cache hit", "memory", "breaker opens", "canary share",
        ]  # fmt: skip


# --- the projections ------------------------------------------------------------------------


def test_value_cells_carry_the_number_and_its_mark() -> None:
    assert value_text(1480.0, "ms", "warning") == "1.48 s ▲"
    assert value_text(0.1, "%", "ok") == "0.10%"
    assert value_text(93.12, "%", "critical") == "93.1% ✖"
    assert value_text(None, "ms", "no_data") == "no data"
    assert value_text(None, "ms", "source_down") == "source down ⚠"
    assert value_text(None, "ms", "stale") == "stale ⌛"


def test_breached_values_show_their_level_and_5m_values_are_marked_by_the_same_levels() -> None:
    row = live(p95=620.0, p95_state="warning", five=(40.0, 700.0, 1200.0), failed=40, total=700,
               rate_state="critical", failed_5m=210, total_5m=3000)  # fmt: skip
    latency = latency_data(view(row), NOW)
    assert [s.text for s in latency.now] == ["p50 42.1 ms", "p95 620 ms ▲ > 500 ms", "p99 312 ms"]
    # 5m p95 is past the same warning level; p99 has no threshold, so no mark whatever its value.
    assert [(s.text, s.state) for s in latency.five] == [
        ("p50 40.0 ms", ""), ("p95 700 ms ▲ > 500 ms", "warning"), ("p99 1.20 s", ""),
    ]  # fmt: skip
    assert latency.five_label == "5m"
    errors = errors_data(view(row), NOW)
    assert (errors.rate.text, errors.rate_five.text) == ("5.71% ✖ > 5.00%", "7.00% ✖ > 5.00%")
    assert errors.rate_five.state == "critical"
    # A stale row marks nothing as current.
    stale = latency_data(view(row, updated_at=NOW - 30), NOW)
    assert [s.state for s in stale.five] == ["stale"] * 3


def test_a_5m_window_of_another_measurement_is_named_and_not_judged() -> None:
    """p95 from the health JSON, 5m from the prober: two measurements, one set of levels."""
    row = live(p95=620.0, p95_state="warning", five=(40.0, 700.0, 1200.0))
    json_p95 = tuple(s.model_copy(update={"source": "health-json"}) if s.name.startswith("p") else s
                     for s in row.signals)  # fmt: skip
    latency = latency_data(view(row.model_copy(update={"signals": json_p95})), NOW)
    assert latency.five_label == "probe 5m"
    assert [s.state for s in latency.five] == ["", "", ""]
    assert latency.now[1].text == "p95 620 ms ▲ > 500 ms"


def test_ratios() -> None:
    assert [format_ratio(r) for r in (1.8, 0.954, 12.4, float("inf"), None, 1.0, 1.035, 0.0)] == [
        "×1.8",
        "×0.95",
        "×12",
        "—",
        "—",
        "×1.0",
        "×1.0",
        "—",
    ]


def test_no_ratio_against_zero_or_from_zero() -> None:
    """What an operator saw: "errors 0.00% 0.00% ×1.0", "5xx rate 0% 0.0442% ×0",
    "breaker opens 1 0 ×∞". Each reads "—" now; the values beside it say what there is."""

    def extra(five_xx: float, breaker: float) -> tuple[SignalValue, ...]:
        return (
            signal("five_xx", five_xx, unit="%", label="5xx rate", source="health-json"),
            signal("breaker", breaker, unit="", label="breaker opens", source="health-json"),
        )

    canary = view(live("checkout-canary", health="down", reason="HTTP 503", failed=0, total=700,
                       extra=extra(0.0, 1.0), baseline="checkout"))
    stable = view(live("checkout", failed=0, total=700, extra=extra(0.0442, 0.0)))
    rows = {r.label: r for r in compare_data(canary, stable, NOW).rows}
    assert [(rows[n].canary.text, rows[n].baseline.text, rows[n].ratio)
            for n in ("errors", "5xx rate", "breaker opens")] == [
        ("0.00%", "0.00%", "—"),
        ("0.00%", "0.04%", "—"),
        ("1", "0", "—"),
    ]  # fmt: skip
    health = rows["health"]
    assert (health.canary, health.baseline) == (Shown("✖ down", "down"), Shown("● up", "up"))
    assert health.info == Shown("HTTP 503", "down")
    assert list(rows) == ["health", "p95", "errors", "5xx rate", "breaker opens"]


def test_zero_of_zero_is_no_data_not_zero_percent() -> None:
    data = errors_data(view(live(failed=0, total=0)), NOW)
    assert data.rate == Shown("no data", "no_data")
    assert data.counts == "· 0 probes in 1m"


def test_a_problem_reading_the_row_is_the_reason() -> None:
    data = health_data(view(live(), problem="live row unreadable: bad JSON"), NOW)
    assert data.reason == "⚠ live row unreadable: bad JSON"


def test_comparison_ratios_and_a_baseline_without_data() -> None:
    canary, stable = canary_pair()
    rows = {r.name: r for r in compare_data(canary, stable, NOW).rows}
    assert rows["p95"].ratio == "×1.8"  # 612 / 340
    assert rows["error_rate"].ratio == "×9.0"  # 1.26 / 0.14
    waiting = dataclasses.replace(stable, live=None, updated_at=None)
    rows = {r.name: r for r in compare_data(canary, waiting, NOW).rows}
    assert rows["p95"].ratio == "—"
    assert rows["p95"].info.text == "baseline: waiting for its first value"
