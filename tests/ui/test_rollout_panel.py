"""The rollout panel on a follower: the countdown line, the bell and toast on a rollback, the
why view, what repaints; and the panel's words for each state (pure functions).

The console follows the frozen store (a real follower engine over SQLite, a frozen
clock) with the checkout rollout in a given state: its events written by hand with the
model's deciders, the leader's verdicts judged by the engine's evaluator from 15
minutes of written history (:func:`tests.fixtures.frozen.frozen_rollout_app`).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console
from textual.widget import Widget
from textual.widgets import DataTable, Static

from console.engine.snapshot import RolloutPanel
from console.model import rollouts as machine
from console.model.rollout_live import LIVE_PREFIX, CriterionLive, RolloutLive
from console.model.rollouts import ActionRecord, RolloutState, Stage
from console.ui.app import ConnApp
from console.ui.screens.dashboard import DashboardScreen
from console.ui.screens.rollout_why import WhyScreen, source_text
from console.ui.widgets.rollout_panel import RolloutPane
from console.ui.widgets.rollout_text import (
    countdown_text,
    criterion_rows,
    phase_text,
    stage_bar,
)
from console.ui.widgets.sparkline import SparkText
from tests.fixtures.frozen import T0, frozen_config, frozen_rollout_app
from tests.fixtures.pilot import until
from tests.fixtures.rollout_log import AUTO, RolloutLog


@pytest.fixture
def rollout_app(request: pytest.FixtureRequest) -> Iterator[ConnApp]:
    """The frozen console with the checkout rollout in the state the test names."""
    yield from frozen_rollout_app(request.param)


def notes_of(app: ConnApp, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(title, message) of every notification ``app`` shows from now on."""
    seen: list[tuple[str, str]] = []
    original = app.notify

    def recording(message: str, *, title: str = "", **kw: Any) -> None:
        seen.append((title, message))
        original(message, title=title, **kw)

    monkeypatch.setattr(app, "notify", recording)
    return seen


def bells_of(app: ConnApp, monkeypatch: pytest.MonkeyPatch) -> list[None]:
    rung: list[None] = []
    monkeypatch.setattr(app, "bell", lambda: rung.append(None))
    return rung


def text_of(app: ConnApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


# --- on screen ---------------------------------------------------------------------------


@pytest.mark.parametrize("rollout_app", ["countdown"], indirect=True)
async def test_the_countdown_line_shows_and_ticks_while_an_automatic_rollback_counts_down(
    rollout_app: ConnApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = notes_of(rollout_app, monkeypatch)
    async with rollout_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        line = rollout_app.screen.query_one("#countdown", Static)
        assert line.has_class("-shown") and line.region.y == 1  # right under the header
        assert text_of(rollout_app, "#countdown") == (
            "⚠ auto-rollback of checkout in 8s: error_rate 15.0% > 5.00% for 10s (held 10s, "
            "2 samples) — h hold, R roll back now")
        assert not [n for n in notes if n[0] == "auto-rollback: checkout"], "the line says it here"
        rollout_app.clock.advance(3)
        screen = rollout_app.screen
        assert isinstance(screen, DashboardScreen)
        screen._tick()  # the UI's one-second timer (frozen here)
        await pilot.pause()
        assert text_of(rollout_app, "#countdown").startswith("⚠ auto-rollback of checkout in 5s:")


@pytest.mark.parametrize("rollout_app", ["baking"], indirect=True)
async def test_a_countdown_that_starts_on_another_screen_shows_a_toast(
    rollout_app: ConnApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = notes_of(rollout_app, monkeypatch)
    async with rollout_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert not rollout_app.screen.query_one("#countdown", Static).has_class("-shown")
        await pilot.press("f")
        snapshot = rollout_app.snapshot
        assert snapshot is not None and snapshot.rollouts[0].live is not None
        # The leader (another process) starts counting down: its live row says so.
        live = snapshot.rollouts[0].live.model_copy(update={
            "rollback_at": T0 + 5, "rollback_reason": "error_rate > 5% for 10s: error_rate 7.10% > 5.00%"})
        await rollout_app.engine.store.write_live(
            LIVE_PREFIX + "checkout", live.model_dump(mode="json"), at=T0, writer="leader")
        await until(pilot, lambda: any(title == "auto-rollback: checkout" for title, _ in notes),
                    "the countdown's toast")
        message = next(m for t, m in notes if t == "auto-rollback: checkout")
        assert message == ("at 00:00:05 unless held: error_rate > 5% for 10s: error_rate 7.10% > 5.00% "
                           "— h holds, R rolls back now (on the dashboard)")
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert text_of(rollout_app, "#countdown").startswith("⚠ auto-rollback of checkout in 5s:")


@pytest.mark.parametrize("rollout_app", ["baking"], indirect=True)
async def test_the_bake_timer_ticks_and_old_verdicts_are_marked(rollout_app: ConnApp) -> None:
    async with rollout_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        pane = rollout_app.screen.query_one(RolloutPane)
        assert "baking: 2m left, then a advances" in text_of(rollout_app, "#rollout-phase")
        assert "⌛" not in str(pane.border_title)
        rollout_app.clock.advance(90)  # no leader writes verdicts any more
        screen = rollout_app.screen
        assert isinstance(screen, DashboardScreen)
        screen._tick()
        await pilot.pause()
        assert "baking: 30s left, then a advances" in text_of(rollout_app, "#rollout-phase")
        assert "⌛ verdicts 1m old: is a leader running?" in str(pane.border_title)


@pytest.mark.parametrize("rollout_app", ["baking"], indirect=True)
async def test_a_rollback_rings_the_bell_once_and_shows_its_reason(
    rollout_app: ConnApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = notes_of(rollout_app, monkeypatch)
    bells = bells_of(rollout_app, monkeypatch)
    log = RolloutLog(rollout_app.engine.store, rollout_app.engine.config, "checkout")
    async with rollout_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert bells == []
        reason = "error_rate > 5% for 10s: error_rate 7.10% > 5.00% for 10s"
        # The leader (another process) starts the rollback; this console follows the log.
        await log.roll_back(T0 + 1, reason, criterion="error_rate > 5% for 10s", finish=False)
        await until(pilot, lambda: bool(bells), "the bell")
        assert ("rollback: checkout", f"run 1 rolled back automatically: {reason}") in notes
        # The rollback finishes, more snapshots come: no second bell, no second toast.
        await log.finish_actions(T0 + 2)
        await log.do(T0 + 3, AUTO, "every rollback action finished",
                     lambda s: machine.finish_rollback(s, log.plan))
        await until(pilot, lambda: phase_of(rollout_app) == "rolled_back", "rolled back")
        await pilot.pause(0.3)
        assert len(bells) == 1
        assert sum(title == "rollback: checkout" for title, _ in notes) == 1


def phase_of(app: ConnApp) -> str:
    snapshot = app.snapshot
    panel = snapshot.rollout("checkout") if snapshot is not None else None
    return panel.view(app.clock.now()).phase if panel is not None else ""


@pytest.mark.parametrize("rollout_app", ["rolled_back"], indirect=True)
async def test_a_console_started_long_after_a_rollback_does_not_ring(
    rollout_app: ConnApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    bells = bells_of(rollout_app, monkeypatch)
    async with rollout_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert bells == []  # 90 s before this console started: history, on the panel
        assert "rolled back automatically 1m ago" in text_of(rollout_app, "#rollout-phase")


@pytest.mark.parametrize("rollout_app", ["countdown"], indirect=True)
async def test_enter_on_a_criterion_opens_the_why_view_with_its_sparkline(rollout_app: ConnApp) -> None:
    async with rollout_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("tab")  # from the services table to the criteria
        table = rollout_app.screen.query_one("#rollout-criteria", DataTable)
        assert table.has_focus
        await pilot.press("enter")  # the first row: the abort criterion counting down
        screen = rollout_app.screen
        assert isinstance(screen, WhyScreen)
        assert (screen.role, screen.text) == ("abort", "error_rate > 5% for 10s")
        spark = screen.query_one("#why-canary", SparkText)
        await until(pilot, lambda: bool(spark.line.strip("·")), "the sparkline")
        assert spark.line[-1] == "█" and spark.line[0] == "▁"  # calm 15 minutes ago, bad now
        facts = plain(screen.query_one("#why-facts", Static))
        for shown in ("measured by the prober: failed probes ÷ probes over the last 1m",
                      "must not hold", "rollback after a 10s countdown",
                      "✖ fail: error_rate 15.0% > 5.00% for 10s", "for 10s (since 23:59:50)",
                      "≤ 1m 22s (1m window + 10s for + 1s probe + 1s evaluation + 10s grace)"):
            assert shown in facts, shown
        assert "the rule's level 5.00%" in str(screen.query_one("#why-canary-legend", Static).render())
        # Its evaluation history, replayed from the recorded slices: calm, then failing.
        evaluations = screen.query_one("#why-evaluations", Static)
        await until(pilot, lambda: "fail" in plain(evaluations), "the evaluation history")
        history = plain(evaluations)
        assert "replayed from the signal history" in history
        assert history.index("pass") < history.rindex("fail"), history
        await pilot.press("escape")
        assert isinstance(rollout_app.screen, DashboardScreen)


def plain(widget: Static) -> str:
    """What a Static shows (a Rich table too), as one unwrapped text."""
    console = Console(width=1000, record=True, file=io.StringIO())
    console.print(widget.content)
    return " ".join(console.export_text().split())


@pytest.mark.parametrize("rollout_app", ["countdown"], indirect=True)
async def test_a_relative_criterion_draws_the_baseline_too(rollout_app: ConnApp) -> None:
    async with rollout_app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("tab", "down", "down", "enter")
        screen = rollout_app.screen
        assert isinstance(screen, WhyScreen) and screen.text == "p95 > 1.5x baseline for 10s"
        assert screen.has_class("-relative")
        baseline = screen.query_one("#why-baseline", SparkText)
        await until(pilot, lambda: bool(baseline.line), "the baseline's sparkline")
        canary = screen.query_one("#why-canary", SparkText)
        # One scale for both: the baseline's flat 262 ms sits well under the canary's 944 ms.
        assert set(baseline.line) == {"▃"} and canary.line[-1] == "█"


@pytest.mark.parametrize("rollout_app", ["ready_failing"], indirect=True)
async def test_a_snapshot_that_changes_nothing_on_the_panel_repaints_nothing(
    rollout_app: ConnApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    repainted: list[Widget] = []
    original = Widget.refresh

    def recording(self: Widget, *regions: Any, repaint: bool = True, **kw: Any) -> Widget:
        if repaint or kw.get("layout"):
            repainted.append(self)
        return original(self, *regions, repaint=repaint, **kw)

    async with rollout_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        monkeypatch.setattr(Widget, "refresh", recording)
        snapshot = rollout_app.snapshot
        assert snapshot is not None
        panel = snapshot.rollouts[0]
        assert panel.live is not None
        # The leader writes the verdicts every second: a new time, the same verdicts.
        live = panel.live.model_copy(update={"at": panel.live.at + 0.5})
        rollout_app.snapshot = dataclasses.replace(snapshot, rollouts=(dataclasses.replace(panel, live=live),))
        await pilot.pause()
        pane = rollout_app.screen.query_one(RolloutPane)
        assert not [w for w in repainted if w is pane or pane in w.ancestors]


# --- the words ---------------------------------------------------------------------------


def _panel(state: RolloutState, live: RolloutLive | None = None) -> RolloutPanel:
    return RolloutPanel("checkout", state, frozen_config(rollout=True).rollouts["checkout"], live)


def _active(index: int = 1, **changes: Any) -> RolloutState:
    """Run 2 in stage ``index``, entered a minute before T0 by alice, its flag action done."""
    flag = ActionRecord(f"run2/stage{index + 1}/flag", "flag", "flag checkout_v2", True, "finished",
                        1, T0 - 60, "conn-auto")
    return dataclasses.replace(RolloutState(
        "checkout", version=5, run=2, lifecycle="active", stage_names=("internal", "10%", "50%", "100%"),
        stage=Stage(index, ("internal", "10%", "50%", "100%")[index], 10.0, T0 - 60, "alice"),
        actions={flag.id: flag},
    ), **changes)


def test_the_stage_bar_marks_done_current_and_next_and_closes_up_when_narrow() -> None:
    panel = _panel(_active())
    view = panel.view(T0)
    full, width = stage_bar(panel, view)
    assert width == len("internal ✔ ─ 10% ● ─ 50% ○ ─ 100% ○")
    assert "internal [$success]✔[/]" in full and "10% [bold $accent]●[/]" in full
    closed, width = stage_bar(panel, view, 30)
    assert "10%[bold $accent]●[/]" in closed
    assert width == len("internal✔─10%●─50%○─100%○")
    short, _ = stage_bar(panel, view, 12)
    assert short.startswith("stage 2/4 10% ")


def test_the_phase_reads_as_the_state_machine_says() -> None:
    baking = _panel(_active())
    assert phase_text(baking, baking.view(T0), T0) == ("baking: 4m left, then a advances", "-phase-baking")
    ready = _panel(_active(), RolloutLive(name="checkout", run=2, at=T0, gate_passing=False,
                                          blocked="cache_hit_rate > 70%: cache_hit_rate 64.0%, not > 70.0%"))
    assert phase_text(ready, ready.view(T0 + 300), T0 + 300)[0] == (
        "ready, but the gate holds it: cache_hit_rate > 70%: cache_hit_rate 64.0%, not > 70.0%")
    pending = _panel(RolloutState("checkout"))
    assert phase_text(pending, pending.view(T0), T0)[0] == "not started — a starts run 1"


def test_the_countdown_is_for_this_run_and_an_active_rollout_only() -> None:
    failing = CriterionLive(text="error_rate > 5% for 10s", role="abort", outcome="fail", value=7.1,
                            threshold=5.0, evidence="error_rate 7.10% > 5.00% for 10s (held 10s, 9 samples)")
    live = RolloutLive(name="checkout", run=2, at=T0, abort=(failing,), rollback_at=T0 + 8,
                       rollback_reason=f"error_rate > 5% for 10s: {failing.evidence}")
    assert countdown_text(_panel(_active(), live), T0) == (
        "⚠ auto-rollback of checkout in 8s: error_rate 7.10% > 5.00% for 10s (held 10s, 9 samples) "
        "— h hold, R roll back now")
    assert countdown_text(_panel(_active(), live.model_copy(update={"run": 1})), T0) is None
    assert countdown_text(_panel(_active(lifecycle="rolling_back"), live), T0) is None
    assert countdown_text(_panel(_active(), live.model_copy(update={"rollback_at": None})), T0) is None


def test_rows_put_a_failing_abort_criterion_first_and_unjudged_ones_last() -> None:
    failing = CriterionLive(text="error_rate > 5% for 10s", role="abort", outcome="fail")
    gate_fail = CriterionLive(text="p95 < 500ms", role="gate", outcome="fail")
    no_data = CriterionLive(text="cache_hit_rate > 70%", role="gate", outcome="no_data")
    live = RolloutLive(name="checkout", run=2, at=T0, gate=(gate_fail, no_data), abort=(failing,))
    panel = _panel(_active(), live)
    rows = criterion_rows(panel, panel.view(T0))
    assert [(r.role, r.text, r.outcome) for r in rows] == [
        ("abort", "error_rate > 5% for 10s", "fail"),
        ("gate", "p95 < 500ms", "fail"),
        ("gate", "cache_hit_rate > 70%", "no_data"),
        ("gate", "error_rate < 1%", None),
        ("abort", "health_failures > 3 within 30s", None),
        ("abort", "p95 > 1.5x baseline for 10s", None),
    ]


def test_the_source_of_each_kind_of_signal() -> None:
    config = frozen_config(rollout=True)
    assert source_text(config, "checkout-canary", "cache_hit_rate") == (
        "health JSON metrics.cache_hit_rate × 100, read by each probe (a probe every 1s)")
    assert source_text(config, "checkout-canary", "p95").startswith(
        "measured by the prober: the 95th percentile")
    assert source_text(config, "checkout-canary", "health_failures").startswith("failed probes of")
    assert source_text(config, "checkout-canary", "nope") == "nope is not a signal of checkout-canary"
