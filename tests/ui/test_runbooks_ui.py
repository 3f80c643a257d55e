"""The runbooks UI: `b` lists the runbooks, the runner runs a run's steps from the keyboard.

Keyboard tests run a real engine (a follower: no probes, so nothing else
lands on an incident's timeline) on a temporary SQLite store, with runbooks
in a temporary folder whose steps are real ``sh`` scripts; they press keys at
80x24 and assert on what the store recorded and what the screen shows.
Snapshot tests write a run through the engine's commands and the model's
deciders at fixed times (fixed durations and output, no subprocess), and
render the list and the runner at 80x24 and 120x40.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import RichLog, Static

from console.config import parse_config
from console.engine.core import Engine
from console.engine.incidents import OpenIncident
from console.engine.runbooks import AcknowledgeRunbookStep, SkipRunbookStep, StartRunbook
from console.model.clock import FakeClock
from console.model.events import Actor, Event, NewEvent
from console.model.runbook_runs import fail_step, finish_step, start_step
from console.store import EventStore, open_store
from console.ui.app import ConnApp
from console.ui.modals.confirm import ConfirmModal
from console.ui.modals.declare import ChoiceModal
from console.ui.modals.prompt import PromptModal
from console.ui.screens.dashboard import DashboardScreen
from console.ui.screens.incident import IncidentScreen
from console.ui.screens.runbooks import RunbooksScreen
from console.ui.screens.runner import MAX_OUTPUT_LINES, RunnerScreen
from console.ui.widgets.runbook_steps import RunbookSteps
from tests.fixtures.pilot import type_text, until

ALICE = Actor("alice")
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

RUNBOOK = """---
title: Checkout errors
service: checkout
---

# Checkout errors

More than 1 % of the requests to ${SERVICE} fail.

> [!WARNING]
> Do not restart ${SERVICE}: it hides the evidence.

## Look

Read the dashboard first.

## Count

```sh {"name": "count"}
echo "one ${SERVICE}"
printf 'two [bold red]pwned[/] \\033[2J\\033]8;;http://evil.example\\007link\\033]8;;\\007\\n'
echo "three" >&2
```

## Confirm

- [ ] Looked at the graph
- [ ] Told the channel

## Break

> [!WARNING]
> This breaks things on purpose.

```sh {"name": "break", "conn.confirm": "yes break it"}
echo about to fail >&2
exit 3
```

## Wait

```sh {"name": "wait"}
echo waiting
sleep 30
```

## After

```sh {"name": "after", "conn.dangerous": true}
echo done
```
"""

ASKS = """---
title: Restart a host
vars:
  TARGET: ""
---

## Restart

```sh {"name": "restart"}
echo "restarting ${TARGET}"
```
"""

BROKEN = "---\ntitle: Broken\n---\n\n## Step\n\n```sh\necho never closed\n"
"""An unclosed code block: listed with the line where it opens."""


def write_runbooks(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkout-errors.md").write_text(RUNBOOK)
    (folder / "restart-host.md").write_text(ASKS)
    (folder / "broken.md").write_text(BROKEN)


def config_text(folder: Path, store: Path) -> str:
    return f"""
store = "sqlite:///{store}"
[flags]
export = "{store.parent / 'flags.json'}"
[runbooks]
paths = ["{folder}"]
shell = ["sh", "-c"]
[services.checkout]
health_url = "http://127.0.0.1:9/health"
interval = "1s"
[services.search]
health_url = "http://127.0.0.1:9/health"
interval = "1s"
"""


Make = Callable[..., Any]


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Make]:
    """Make a console (``alice`` at the keyboard) over real runbooks; closes its store after."""
    stores: list[EventStore] = []
    write_runbooks(tmp_path / "runbooks")

    async def make(*, start: float = T0) -> tuple[ConnApp, EventStore]:
        config = parse_config(config_text(tmp_path / "runbooks", tmp_path / "conn.db"))
        store = await open_store(config.store)
        stores.append(store)
        engine = Engine(config, store, clock=FakeClock(start), actor=ALICE, lead=False)
        return ConnApp(engine, clock=engine.clock, ticking=False), store

    yield make
    for store in stores:
        await store.close()


def screen_text(app: ConnApp) -> str:
    """The characters on screen (the screenshot's text, without SVG markup)."""
    return html.unescape(re.sub(r"<[^>]+>", "", app.export_screenshot())).replace("\xa0", " ")


def output(app: ConnApp) -> str:
    log = app.screen.query_one("#runner-output", RichLog)
    return "\n".join("".join(segment.text for segment in line) for line in log.lines)


def steps(app: ConnApp) -> list[str]:
    """The runner's step lines, as shown."""
    listing = app.screen.query_one(RunbookSteps)
    return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]


def step(app: ConnApp, number: int) -> str:
    return steps(app)[number - 1]


def shown(app: ConnApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def run_events(store: EventStore, run: str = "checkout-errors-1") -> list[Event]:
    return await store.read_stream(f"runbook/{run}")


def record_notes(app: ConnApp, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    original = app.notify

    def recording(message: str, *, title: str = "", **kw: Any) -> None:
        seen.append((title, message))
        original(message, title=title, **kw)

    monkeypatch.setattr(app, "notify", recording)
    return seen


async def open_list(pilot: Any, app: ConnApp) -> RunbooksScreen:
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
    await pilot.press("b")
    await until(pilot, lambda: isinstance(app.screen, RunbooksScreen), "the runbooks list")
    screen = app.screen
    assert isinstance(screen, RunbooksScreen)
    return screen


async def start_run(pilot: Any, app: ConnApp, name: str = "checkout-errors") -> RunnerScreen:
    """From the list: the cursor to ``name``, Enter, and wait for the runner."""
    screen = app.screen
    assert isinstance(screen, RunbooksScreen)
    for _ in range(10):
        if screen.selected_name == name:
            break
        await pilot.press("down")
    assert screen.selected_name == name
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, RunnerScreen), "the runner")
    runner = app.screen
    assert isinstance(runner, RunnerScreen)
    await until(pilot, lambda: bool(steps(app)), "the steps")
    return runner


async def run_until_count_ran(pilot: Any, app: ConnApp) -> None:
    """Step 1 (a note) read with `n`, step 2 run with `r`; wait until it succeeded."""
    await pilot.press("n")
    await until(pilot, lambda: step(app, 1).startswith("✓ succeeded"), "step 1 read")
    assert app.screen.query_one(RunbookSteps).selected_step == 2, "the selection follows the run"
    await pilot.press("r")
    await until(pilot, lambda: step(app, 2).startswith("✓ succeeded"), "step 2 succeeded")


# --- the list ------------------------------------------------------------------------------


async def test_b_lists_the_runbooks_and_a_broken_one_with_its_line(console: Make) -> None:
    app, _ = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_list(pilot, app)
        text = screen_text(app)
        assert "checkout-errors" in text and "Checkout errors" in text and "restart-host" in text
        assert "never run" in text
        assert "⚠ broken broken.md line 7: " in shown(app, "#runbooks-broken")
        assert "broken " not in [line.split("│")[0] for line in text.splitlines()], "not a table row"
        row = next(line for line in text.splitlines() if "checkout-errors" in line)
        assert "checkout" in row.split("checkout-errors", 1)[1] and " 6 " in row  # service, steps
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


# --- running steps -------------------------------------------------------------------------


async def test_a_step_runs_its_output_streams_into_the_log_and_it_succeeds(console: Make) -> None:
    app, store = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_list(pilot, app)
        await start_run(pilot, app)
        assert "⚠ WARNING Do not restart checkout: it hides the evidence." in shown(app, "#runner-banner")
        assert step(app, 1).startswith("· pending") and "Look" in step(app, 1)
        await pilot.press("n")
        await until(pilot, lambda: step(app, 1).startswith("✓ succeeded"), "step 1 read")
        assert '$ echo "one checkout"' in shown(app, "#runner-detail"), "the exact resolved command"
        await pilot.press("r")
        await until(pilot, lambda: step(app, 2).startswith("✓ succeeded"), "step 2 succeeded")
        log = output(app)
        assert "── step 2 · Count ──" in log
        assert "one checkout" in log and "three" in log
        assert "── ✓ succeeded: exit 0" in log
        assert "exit 0 in" in step(app, 2)
        types = [e.type for e in await run_events(store)]
        assert types == ["runbook.started", "runbook.step_finished", "runbook.step_previewed",
                         "runbook.step_started", "runbook.step_finished"]
        assert all(e.actor == "alice" for e in await run_events(store))
        # Back to the list: the last run is shown.
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunbooksScreen), "the list")
        row = next(line for line in screen_text(app).splitlines() if "checkout-errors" in line)
        assert "step 3/6 · pending" in row, row


async def test_a_step_printing_a_flood_leaves_the_log_bounded_and_its_end_shown(
    console: Make, tmp_path: Path
) -> None:
    flood = '---\ntitle: Flood\n---\n\n## Flood\n\n```sh {"name": "flood"}\nseq 1 300000\n```\n'
    (tmp_path / "runbooks" / "flood.md").write_text(flood)
    app, _ = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_list(pilot, app)
        await start_run(pilot, app, "flood")
        await pilot.press("r")
        await until(pilot, lambda: step(app, 1).startswith("✓ succeeded"), "the flood ran", within=60)
        log = app.screen.query_one("#runner-output", RichLog)
        assert len(log.lines) <= MAX_OUTPUT_LINES
        lines = output(app).splitlines()
        assert lines[-2:] == ["300000", lines[-1]] and lines[-1].startswith("── ✓ succeeded: exit 0")
        assert any(re.fullmatch(r"… [\d,]+ lines not shown here \(the run keeps an excerpt\) …", line)
                   for line in lines), "what was left out is counted"


async def test_output_with_escapes_and_markup_is_shown_literally(console: Make) -> None:
    app, _ = await console()
    async with app.run_test(size=(120, 30)) as pilot:
        await open_list(pilot, app)
        await start_run(pilot, app)
        await run_until_count_ran(pilot, app)
        log = output(app)
        assert "two [bold red]pwned[/] link" in log, log
        assert "\x1b" not in log and "\x07" not in log
        assert "two [bold red]pwned[/] link" in screen_text(app)


async def test_a_failing_step_stops_the_run_and_a_step_is_skipped_with_a_reason(
    console: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, store = await console()
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await open_list(pilot, app)
        await start_run(pilot, app)
        await run_until_count_ran(pilot, app)
        await pilot.press("t")
        await until(pilot, lambda: "1 ticked" in step(app, 3), "one check ticked")
        assert "[x] Looked at the graph" in shown(app, "#runner-detail")
        await pilot.press("space")
        await until(pilot, lambda: step(app, 3).startswith("✓ succeeded"), "the checks ticked")

        # Step 4 asks for a typed confirmation: a wrong one is refused, nothing runs.
        assert "r asks you to type yes break it" in shown(app, "#runner-detail")
        assert "This breaks things on purpose." in shown(app, "#runner-banner")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirmation")
        assert "yes break it" in screen_text(app)
        await type_text(pilot, "yes break")
        await pilot.press("enter")
        await until(pilot, lambda: "exactly to confirm" in str(
            app.screen.query_one("#confirm-error", Static).render()), "the refusal")
        assert isinstance(app.screen, ConfirmModal)
        assert "runbook.step_started" not in [e.type for e in await run_events(store)][-1:]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunnerScreen), "back on the runner")
        assert step(app, 4).startswith("· previewed")

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirmation")
        await type_text(pilot, "yes break it")
        await pilot.press("enter")
        await until(pilot, lambda: step(app, 4).startswith("✖ failed"), "step 4 failed")
        assert "exit 3" in step(app, 4)
        assert "about to fail" in output(app)
        await until(pilot, lambda: any(t == "step 4 failed" for t, _ in notes), "the failure toast")

        # The failed step stops the run: the next one is refused in the engine's words.
        await pilot.press("down")
        await pilot.press("r")
        await until(pilot, lambda: any("waits for step 4 (Break), which is failed" in m for _, m in notes), "the refusal")
        assert step(app, 5).startswith("· pending")

        await pilot.press("up", "k")
        await until(pilot, lambda: isinstance(app.screen, PromptModal), "the reason prompt")
        await pilot.press("enter")  # no reason: asked for
        assert isinstance(app.screen, PromptModal)
        await type_text(pilot, "known to fail in the drill")
        await pilot.press("enter")
        await until(pilot, lambda: step(app, 4).startswith("⊘ skipped"), "step 4 skipped")
        assert "skipped: known to fail in the drill" in step(app, 4)
        events = await run_events(store)
        confirmed = [e for e in events if e.type == "runbook.step_confirmed"]
        assert [e.payload["step"] for e in confirmed] == [4], "one confirmation: the right one"
        skipped = events[-1]
        assert (skipped.type, skipped.payload["reason"]) == ("runbook.step_skipped", "known to fail in the drill")


async def test_c_cancels_a_running_step_and_esc_waits_for_it(
    console: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, store = await console()
    notes = record_notes(app, monkeypatch)
    engine = app.engine
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: engine.state == "running", "the engine")
        started = await engine.execute(StartRunbook(runbook="checkout-errors"))
        run = started.detail.run_id
        await engine.execute(AcknowledgeRunbookStep(run=run, step=1))
        for number in (2, 3, 4):
            await engine.execute(SkipRunbookStep(run=run, step=number, reason="not in this test"))
        await open_list(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ChoiceModal), "resume or start anew")
        assert "resume checkout-errors-1 — step 5/6 · pending" in screen_text(app)
        await pilot.press("enter")  # resume
        await until(pilot, lambda: isinstance(app.screen, RunnerScreen), "the runner")
        await until(pilot, lambda: bool(steps(app)) and step(app, 4).startswith("⊘ skipped"), "the run")
        assert app.screen.query_one(RunbookSteps).selected_step == 5
        await pilot.press("r")
        await until(pilot, lambda: step(app, 5).startswith("▶ running") and "waiting" in output(app),
                    "step 5 running")
        await pilot.press("escape")
        assert isinstance(app.screen, RunnerScreen), "Esc is refused while a step runs"
        assert any("c cancels it" in m for _, m in notes)
        await pilot.press("c")
        await until(pilot, lambda: step(app, 5).startswith("⊘ cancelled"), "step 5 cancelled", within=15)
        assert "⊘ cancelled" in output(app)
        failed = [e for e in await run_events(store, run) if e.type == "runbook.step_failed"]
        assert [(e.payload["step"], e.payload["outcome"]) for e in failed] == [(5, "cancelled")]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunbooksScreen), "back on the list")


async def test_an_interrupted_step_runs_again_only_with_a_reason(console: Make) -> None:
    app, store = await console(start=T0 - 3600)  # an hour ago, a console started step 2 and went away
    engine = app.engine
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: engine.state == "running", "the engine")
        run = (await engine.execute(StartRunbook(runbook="checkout-errors"))).detail
        await engine.execute(AcknowledgeRunbookStep(run=run.run_id, step=1))
        state = engine.run(run.run_id)
        changes = start_step(state, engine.runbooks.get("checkout-errors"), 2)
        await store.append(state.stream, state.version, [NewEvent(k, p) for k, p in changes],
                           actor=Actor("bob"), at=clock.now())
        await engine.projections.refresh(store, state.stream)
        clock.set(T0)
        await open_list(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ChoiceModal), "resume or start anew")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunnerScreen) and bool(steps(app)), "the runner")
        assert step(app, 2).startswith("⚠ interrupted")
        await pilot.press("r")  # as `y`: a stopped step is retried
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the retry dialog")
        assert "it may have run already" in screen_text(app)
        await pilot.press("enter")  # no reason: refused
        assert isinstance(app.screen, ConfirmModal)
        await type_text(pilot, "bob lost his session")
        await pilot.press("enter")
        await until(pilot, lambda: step(app, 2).startswith("✓ succeeded"), "step 2 run again")
        assert "attempt 2" in output(app)
        events = await run_events(store)
        interrupted = next(e for e in events if e.type == "runbook.step_failed")
        assert interrupted.payload["outcome"] == "interrupted"
        again = [e for e in events if e.type == "runbook.step_started"][-1]
        assert (again.payload["retry_reason"], again.actor) == ("bob lost his session", "alice")


async def test_a_missing_variable_is_asked_for(console: Make) -> None:
    app, store = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_list(pilot, app)
        screen = app.screen
        assert isinstance(screen, RunbooksScreen)
        for _ in range(5):
            if screen.selected_name == "restart-host":
                break
            await pilot.press("down")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptModal), "the variable prompt")
        assert "restart-host needs TARGET (1 of 1)" in screen_text(app)
        await type_text(pilot, "web-7")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunnerScreen), "the runner")
        await until(pilot, lambda: '$ echo "restarting web-7"' in shown(app, "#runner-detail"), "the preview")
        started = (await run_events(store, "restart-host-1"))[0]
        assert started.payload["vars"]["TARGET"] == "web-7"


async def test_from_an_incident_the_offered_runbook_comes_first_and_the_run_joins_its_timeline(
    console: Make,
) -> None:
    app, store = await console()
    engine = app.engine
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: engine.state == "running", "the engine")
        await engine.execute(OpenIncident(title="checkout errors", services=("checkout",), severity="SEV2"))
        await pilot.press("I")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "the incident screen")
        await until(pilot, lambda: "runbooks: checkout-errors (b)" in shown(app, "#incident-runbooks"),
                    "the offer")
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, RunbooksScreen), "the runbooks list")
        screen = app.screen
        assert isinstance(screen, RunbooksScreen) and screen.selected_name == "checkout-errors"
        rows = [line for line in screen_text(app).splitlines() if "-host" in line or "-errors" in line]
        assert "★ checkout-errors" in rows[0] and "restart-host" in rows[1], rows
        assert "Runbooks for INC-1" in screen_text(app)
        await start_run(pilot, app)
        assert "for INC-1" in shown(app, "#runner-header")
        await run_until_count_ran(pilot, app)
        assert (await run_events(store))[0].payload["incident"] == "INC-1"
        def texts() -> list[str]:
            return [e.text for e in engine.incident("INC-1").state.entries if e.kind == "runbook"]

        await until(pilot, lambda: any("step 2 (Count) finished: exit 0" in t for t in texts()),
                    "step 2 on the incident's timeline")
        assert texts()[0] == "runbook checkout-errors started"
        await pilot.press("escape", "escape")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "back on the incident")
        await until(pilot, lambda: "run checkout-errors-1: step 3/6 · pending" in shown(
            app, "#incident-runbooks"), "the run under the header")


# --- snapshots -----------------------------------------------------------------------------

SNAP_DIR = Path("/tmp/conn-runbooks-ui")


def _snapshot_app() -> Iterator[ConnApp]:
    """A console with the runbooks and one run written at fixed times (no subprocess)."""
    os.environ["TZ"] = "UTC"
    time.tzset()
    shutil.rmtree(SNAP_DIR, ignore_errors=True)
    write_runbooks(SNAP_DIR / "runbooks")
    config = parse_config(config_text(SNAP_DIR / "runbooks", SNAP_DIR / "conn.db"))
    clock = FakeClock(T0 - 900)
    store = asyncio.run(open_store(config.store))

    async def fill() -> None:
        async with Engine(config, store, clock=clock, actor=ALICE, lead=False, follow=False,
                          sync_flag_file=False) as writer:
            await writer.execute(OpenIncident(title="checkout errors", services=("checkout",),
                                              severity="SEV2"))
            run = (await writer.execute(StartRunbook(runbook="checkout-errors", incident="INC-1"))).detail
            clock.set(T0 - 840)
            await writer.execute(AcknowledgeRunbookStep(run=run.run_id, step=1))
            runbook = writer.runbooks.get("checkout-errors")

            async def append(changes: Any, at: float) -> None:
                state = writer.run(run.run_id)
                clock.set(at)
                await store.append(state.stream, state.version, [NewEvent(k, p) for k, p in changes],
                                   actor=ALICE, at=at)
                await writer.projections.refresh(store, state.stream)

            await append(start_step(writer.run(run.run_id), runbook, 2), T0 - 780)
            await append(finish_step(writer.run(run.run_id), 2, duration=0.4, excerpt=(
                "one checkout\ntwo [bold red]pwned[/] link\nthree")), T0 - 779)
            clock.set(T0 - 600)
            await writer.execute(SkipRunbookStep(run=run.run_id, step=3, reason="graphs are down"))
            await append(start_step(writer.run(run.run_id), runbook, 4, typed="yes break it"), T0 - 300)
            await append(fail_step(writer.run(run.run_id), 4, outcome="failed", duration=0.2,
                                   error="exit 3", excerpt="about to fail", exit_code=3), T0 - 299)

    asyncio.run(fill())
    clock.set(T0)
    engine = Engine(config, store, clock=clock, actor=ALICE, lead=False)
    yield ConnApp(engine, clock=clock, ticking=False)
    asyncio.run(store.close())
    shutil.rmtree(SNAP_DIR, ignore_errors=True)


@pytest.fixture
def runbook_app() -> Iterator[ConnApp]:
    yield from _snapshot_app()


SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])


def _opening(*keys: str, shown: Callable[[ConnApp], bool]) -> Callable[[Any], Any]:
    async def run(pilot: Any) -> None:
        await pilot.pause(0.3)
        await pilot.press(*keys)
        await until(pilot, lambda: shown(pilot.app), f"what {keys} opens")
        await pilot.pause(0.3)

    return run


@SIZES
def test_runbooks_list(snap_compare: Any, runbook_app: ConnApp, size: tuple[int, int]) -> None:
    """Two runbooks (one with a run stopped at a failed step), the broken one with its line."""
    run = _opening("b", shown=lambda app: isinstance(app.screen, RunbooksScreen))
    assert snap_compare(runbook_app, terminal_size=size, run_before=run)


@SIZES
def test_runner(snap_compare: Any, runbook_app: ConnApp, size: tuple[int, int]) -> None:
    """The run resumed: ✓ ✓ ⊘ ✖ · ·, the failed step's danger banner and preview, the output."""
    def resumed(app: ConnApp) -> bool:
        return isinstance(app.screen, RunnerScreen) and "about to fail" in output(app)

    async def run(pilot: Any) -> None:
        app = pilot.app
        await pilot.pause(0.3)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, RunbooksScreen), "the list")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ChoiceModal), "resume or new")
        await pilot.press("enter")
        await until(pilot, lambda: resumed(app), "the run resumed")
        await pilot.pause(0.3)

    assert snap_compare(runbook_app, terminal_size=size, run_before=run)


def test_the_incident_line_offers_runbooks_lists_runs_and_otherwise_names_b() -> None:
    from console.model.runbook_runs import RunState
    from console.ui.screens.incident import runbooks_text

    def pending(run: RunState, number: int) -> Any:
        return "pending"

    assert runbooks_text([], [], pending).plain == ""
    assert runbooks_text([], [], pending, known=3).plain == "runbooks: none names its services or alerts; b lists all 3"
    assert runbooks_text(["high-error-rate", "service-outage"], [], pending, known=3).plain == (
        "runbooks: high-error-rate, service-outage (b)")
    runs = [RunState(f"r-{n}", lifecycle="finished") for n in range(5)]
    assert runbooks_text([], runs, pending, known=3).plain.splitlines() == [
        "+2 earlier runs (b lists them)", "run r-2: ✓ finished", "run r-3: ✓ finished", "run r-4: ✓ finished"]
