"""Runbook runs through the engine on a real store: real shell steps, the incident's timeline."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from console.config import ConnConfig, located
from console.engine.core import Engine
from console.engine.incidents import OpenIncident
from console.engine.runbooks import (
    AcknowledgeRunbookStep,
    RunRunbookStep,
    SkipRunbookStep,
    StartRunbook,
    TickRunbookCheck,
)
from console.errors import CommandError
from console.model.events import Actor, NewEvent
from console.store import open_store

ALICE = Actor("alice")

RUNBOOK = """---
title: Checkout errors
service: checkout
vars:
  LIMIT: "5"
secrets: [deploy_token]
---

# Checkout errors

## Look

Read the dashboard first.

## Count

```sh {"name": "count"}
echo "checking ${SERVICE} for ${INCIDENT} under ${LIMIT}"
echo "token $DEPLOY_TOKEN"
```

## Confirm

- [ ] Looked at the graph

## Break

```sh {"name": "break", "conn.confirm": "yes break it"}
echo about to fail >&2
exit 3
```

## After

```sh {"name": "after"}
echo done
```
"""


def config(tmp_path: Path) -> ConnConfig:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "checkout-errors.md").write_text(RUNBOOK)
    (tmp_path / "runbooks" / "broken.md").write_text("---\ntitle: [unclosed\n---\n## x\n")
    text = f"""
store = "sqlite://{tmp_path / 'conn.db'}"
[services.checkout]
health_url = "http://127.0.0.1:9/health"
"""
    path = tmp_path / "conn.toml"
    path.write_text(text)
    return located(ConnConfig.model_validate(tomllib.loads(text)), path)


async def test_a_run_linked_to_an_incident_lands_on_its_timeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONN_SECRET_DEPLOY_TOKEN", "s3cr3t-value")
    cfg = config(tmp_path)
    store = await open_store(cfg.store)
    lines: list[tuple[str, str]] = []
    try:
        async with Engine(cfg, store, actor=ALICE, lead=False, follow=False, sync_flag_file=False) as engine:
            view = engine.snapshot.runbooks
            assert [r.name for r in view.runbooks] == ["checkout-errors"]
            assert [b.name for b in view.broken] == ["broken"] and "line" in view.broken[0].describe()
            await engine.execute(OpenIncident(title="checkout errors", services=("checkout",), severity="2"))
            started = await engine.execute(StartRunbook(runbook="checkout-errors", incident="INC-1"))
            run = started.detail.run_id
            assert run == "checkout-errors-1"
            assert engine.run(run).vars["HEALTH_URL"] == "http://127.0.0.1:9/health"
            with pytest.raises(CommandError, match="step 1"):
                await engine.execute(RunRunbookStep(run=run, step=2))  # step 1 (a note) first
            await engine.execute(AcknowledgeRunbookStep(run=run, step=1))
            await engine.execute(RunRunbookStep(run=run, step=2, on_output=lambda s, x: lines.append((s, x))))
            count = engine.run(run).record(2)
            assert (count.status, count.exit_code) == ("succeeded", 0)
            assert ("stdout", "checking checkout for INC-1 under 5") in lines
            assert all("s3cr3t-value" not in x for _, x in lines)
            await engine.execute(TickRunbookCheck(run=run, step=3, item=1))
            with pytest.raises(CommandError, match="yes break it"):
                await engine.execute(RunRunbookStep(run=run, step=4, typed="nope"))
            await engine.execute(RunRunbookStep(run=run, step=4, typed="yes break it"))
            state = engine.run(run)
            assert state.record(4).status == "failed" and state.record(4).exit_code == 3
            with pytest.raises(CommandError):
                await engine.execute(RunRunbookStep(run=run, step=5))  # the failed step stops the run
            await engine.execute(SkipRunbookStep(run=run, step=4, reason="known to fail in the drill"))
            await engine.execute(RunRunbookStep(run=run, step=5))
            assert engine.run(run).record(5).status == "succeeded"
        async with Engine(cfg, store, lead=False, follow=False, sync_flag_file=False) as again:
            texts = [e.text for e in again.incident("INC-1").state.entries if e.kind == "runbook"]
            events = await store.read_all()
    finally:
        await store.close()
    assert texts[0] == "runbook checkout-errors started"
    assert any("step 2 (Count) finished: exit 0" in t for t in texts), texts
    assert any("step 4 (Break) failed: exit 3" in t for t in texts), texts
    assert any("step 4 (Break) skipped: known to fail in the drill" in t for t in texts), texts
    assert all("s3cr3t-value" not in str(e.payload) for e in events)


async def test_a_step_started_on_another_machine_is_running_until_its_timeout_has_surely_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.engine.runbooks import ELSEWHERE_SLACK, KILL_GRACE
    from console.model.clock import FakeClock

    monkeypatch.setenv("CONN_SECRET_DEPLOY_TOKEN", "tok-elsewhere-7c1d0e")
    cfg = config(tmp_path)
    clock = FakeClock()
    store = await open_store(cfg.store)
    try:
        async with Engine(cfg, store, actor=ALICE, clock=clock, lead=False, follow=False,
                          sync_flag_file=False) as engine:
            run = (await engine.execute(StartRunbook(runbook="checkout-errors", values={"SERVICE": "checkout",
                                                                                        "INCIDENT": "none"}))).detail
            await engine.execute(AcknowledgeRunbookStep(run=run.run_id, step=1))
            # Step 2 started by a console on another machine, which then went silent.
            await store.append(run.stream, engine.projections.version_of(run.stream), [NewEvent(
                "runbook.step_started", {"step": 2, "command": "echo", "attempt": 1, "retry_reason": None,
                                         "rollback_of": None, "runner": {"host": "bastion-2", "pid": 1}})],
                actor=Actor("bob"), at=clock.now())
            await engine.projections.refresh(store, run.stream)
            state = engine.run(run.run_id)
            commands = engine.runbook_commands
            assert commands.status(state, 2) == "running"
            with pytest.raises(CommandError, match="still running"):
                await engine.execute(RunRunbookStep(run=run.run_id, step=2, reason="gone?"))
            timeout = engine.runbooks.get("checkout-errors").steps[1].timeout
            clock.advance(timeout + KILL_GRACE + ELSEWHERE_SLACK + 1)
            assert commands.status(engine.run(run.run_id), 2) == "interrupted"
            with pytest.raises(CommandError, match="typed reason"):
                await engine.execute(RunRunbookStep(run=run.run_id, step=2))
            await engine.execute(RunRunbookStep(run=run.run_id, step=2, reason="bastion-2 rebooted"))
            assert engine.run(run.run_id).record(2).status == "succeeded"
    finally:
        await store.close()
