"""The flags screen's words: the detail line per state, the kept "is key X in?" answer, prompts, toasts.

A real engine (follower) on a real SQLite store at 80x24; snapshots re-render
the screen through ``refresh_flags``, which the tests call the way the
snapshot watcher does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.config import parse_config
from console.engine.core import Engine
from console.model.clock import FakeClock
from console.model.events import Actor
from console.store import EventStore, open_store
from console.ui.app import ConnApp
from console.ui.modals.confirm import ConfirmModal
from console.ui.modals.prompt import PromptModal
from console.ui.screens.flags import FlagsScreen
from tests.fixtures.consoles import OtherConsole as FlagService
from tests.fixtures.pilot import open_flags, type_text, until

pytestmark = pytest.mark.slow

FLAGS = """
[flags.groups]
internal = ["user1", "user2", "user3"]

[flags.define.calendar_refactor]
description = "new calendar"
groups = ["internal"]

[flags.define.checkout_v2]
percent = "0.5%"
allow = ["qa-1", "qa-2", "qa-3", "qa-4", "qa-5"]

[flags.define.voiceMessages]
enabled = false
"""

Setup = tuple[ConnApp, EventStore, FlagService, list[tuple[str, str]]]


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    """The app, its store, a second writer (the CLI, another console) and the toasts shown."""
    export = tmp_path / "flags.json"
    config = parse_config(
        f'store = "sqlite:///{tmp_path / "conn.db"}"\n[flags]\nexport = "{export}"\n' + FLAGS
    )
    store = await open_store(config.store)
    clock = FakeClock()
    other = FlagService(store=store, config=config, clock=clock, actor=Actor("bob"), export_path=export)
    await other.load()  # a leader has created the config's flags
    app = ConnApp(Engine(config, store, clock=clock, actor=Actor("alice"), lead=False),
                  clock=clock, ticking=False)  # fmt: skip
    toasts: list[tuple[str, str]] = []
    original = app.notify

    def recording(message: str, *, title: str = "", **kw: Any) -> None:
        toasts.append((title, message))
        original(message, title=title, **kw)

    monkeypatch.setattr(app, "notify", recording)
    yield app, store, other, toasts
    await store.close()


def detail(screen: FlagsScreen) -> str:
    return str(screen.query_one("#flags-detail", Static).render())


async def confirm(pilot: Pilot[None], app: ConnApp, reason: str, *, name: str | None = None) -> None:
    assert isinstance(app.screen, ConfirmModal)
    if name is not None:
        await pilot.click("#confirm-name")
        await type_text(pilot, name)
    await pilot.click("#confirm-reason")
    await type_text(pilot, reason)
    await pilot.press("enter")


async def evaluate(pilot: Pilot[None], app: ConnApp, key: str) -> None:
    await pilot.press("e")
    await type_text(pilot, key)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, FlagsScreen), "prompt closed")


async def test_the_answer_stays_until_the_selection_or_the_flag_changes(setup: Setup) -> None:
    app, _, other, _ = setup
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_flags(app, pilot, "calendar_refactor")
        await evaluate(pilot, app, "user2")
        answer = "user2 → on (true): allowlist TARGETING_MATCH"
        assert answer in detail(screen)
        for _ in range(3):  # the next snapshots re-render the screen
            screen.refresh_flags()
            await pilot.pause()
        assert answer in detail(screen), "still there after the next snapshots"
        await pilot.press("down")  # another flag: its own detail, no old answer
        assert "user2" not in detail(screen)
        await pilot.press("up")
        assert "user2" not in detail(screen), "the answer went with the selection"
        await evaluate(pilot, app, "user2")
        assert answer in detail(screen)
        await other.disable("calendar_refactor", reason="from the CLI")  # the flag changed
        await until(pilot, lambda: "disabled" in detail(screen), "bob's change shown")
        screen.refresh_flags()
        assert "user2" not in detail(screen), "an answer about the old flag is not shown as current"


async def test_killed_and_disabled_flags_say_what_is_true(setup: Setup) -> None:
    app, _, _, _ = setup
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_flags(app, pilot, "checkout_v2")
        assert "enabled — 0.5% get 'on'; 5 keys always on" in detail(screen)
        await pilot.press("k")
        await confirm(pilot, app, "errors up", name="checkout_v2")
        await until(pilot, lambda: "killed" in detail(screen), "killed shown")
        assert ("killed — everyone gets 'off' (0.5% and 5 keys kept for when it is turned on)"
                in detail(screen))  # fmt: skip
        assert "get 'on'" not in detail(screen)
        await pilot.press("down")
        assert screen.selected == "voiceMessages"
        assert "disabled — flagd treats it as absent (0% and 0 keys apply once it is on)" in detail(screen)


async def test_a_percentage_for_a_flag_that_is_off_says_it_applies_later(setup: Setup) -> None:
    app, _, _, _ = setup
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_flags(app, pilot, "voiceMessages")
        await pilot.press("percent_sign")
        await type_text(pilot, "10")
        await pilot.press("enter")
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        body = " ".join(str(s.render()) for s in modal.query(Static))
        assert "The flag is disabled" in body and "10% applies only once it is turned on" in body
        await confirm(pilot, app, "ready for stage 1")
        await until(pilot, lambda: "10%" in detail(screen), "10% shown")
        assert "disabled — flagd treats it as absent (10% and 0 keys apply once it is on)" in detail(screen)


async def test_toasts_keep_the_flag_name_as_it_is(setup: Setup) -> None:
    app, _, _, toasts = setup
    async with app.run_test(size=(80, 24)) as pilot:
        await open_flags(app, pilot, "voiceMessages")
        await pilot.press("space")
        await confirm(pilot, app, "launch")
        await until(pilot, lambda: len(toasts) == 1, "the toast")
        assert app.engine.flag("voiceMessages").state == "enabled"
        assert toasts == [("flags", "voiceMessages: turned on")]
        await pilot.press("space")
        await confirm(pilot, app, "too early")
        await until(pilot, lambda: len(toasts) == 2, "the toast")
        assert toasts[1] == ("flags", "voiceMessages: turned off")
        assert not [t for t in toasts if "voicemessages" in t[1]]


async def test_an_empty_key_is_refused_in_the_prompt(setup: Setup) -> None:
    app, _, _, toasts = setup
    async with app.run_test(size=(80, 24)) as pilot:
        await open_flags(app, pilot, "calendar_refactor")
        await pilot.press("e")
        await pilot.press("enter")
        prompt = app.screen
        assert isinstance(prompt, PromptModal), "still asking"
        assert str(prompt.query_one("#prompt-error", Static).render()) == (
            "type a targeting key, e.g. user-42"
        )
        await type_text(pilot, "@beta")
        await pilot.press("enter")
        assert isinstance(app.screen, PromptModal)
        error = str(prompt.query_one("#prompt-error", Static).render())
        assert error.startswith("'@beta' is not a targeting key")
        assert not toasts
