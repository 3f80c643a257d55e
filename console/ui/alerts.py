"""Rollout alarms every console raises, whatever screen is open: the bell and a toast.

When a rollback starts — the leader's automatic one or anyone's by hand —
every console rings the bell once and shows a toast with the reason, once
per run; an automatic rollback counting down shows a toast when it starts on another
screen (the dashboard has its ticking countdown line).
The app feeds each snapshot to :class:`RolloutAlerts`, which remembers what
it has announced (this process only) and returns what to announce now.

A console that starts long after a run was rolled back says nothing about
it (that is history, on the panel); one that starts during a rollback, or
just after, announces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.engine.snapshot import Snapshot
from console.model.sanitize import clean_text
from console.ui.widgets.rollout_text import clock_text, countdown_reason, current_live


@dataclass(frozen=True)
class Alert:
    """One announcement: a toast, and whether the bell rings with it."""

    title: str
    message: str
    """Plain text (the app escapes it)."""
    bell: bool
    timeout: float


ROLLBACK_TOAST_SECONDS = 30.0


class RolloutAlerts:
    """What to announce for each new snapshot, each thing once."""

    def __init__(self) -> None:
        self._announced: set[tuple[str, int]] = set()
        self._countdowns: set[tuple[str, int, float]] = set()
        self._primed = False

    def observe(self, snapshot: Snapshot, now: float, *, countdown_shown: bool = False) -> list[Alert]:
        """What to announce now. ``countdown_shown``: the screen shows the countdown line
        (the dashboard), so a countdown needs no toast; it is still remembered."""
        alerts: list[Alert] = []
        for panel in snapshot.rollouts:
            state = panel.state
            key = (panel.name, state.run)
            if state.rollback is not None and state.lifecycle in ("rolling_back", "rolled_back"):
                if key in self._announced:
                    continue
                self._announced.add(key)
                rollback = state.rollback
                if not self._primed and state.lifecycle == "rolled_back" and (
                    now - rollback.started_at > ROLLBACK_TOAST_SECONDS
                ):
                    continue  # long over before this console started: the panel says it
                who = "automatically" if rollback.automatic else f"by {clean_text(rollback.by, limit=60)}"
                alerts.append(Alert(
                    f"rollback: {clean_text(panel.name, limit=60)}",
                    f"run {state.run} rolled back {who}: {clean_text(rollback.reason, limit=300)}",
                    bell=True, timeout=ROLLBACK_TOAST_SECONDS,
                ))
                continue
            live = current_live(panel)
            if live is not None and live.rollback_at is not None and state.lifecycle == "active":
                started = (panel.name, state.run, live.rollback_at)
                if started not in self._countdowns:
                    self._countdowns.add(started)
                    if countdown_shown:
                        continue
                    alerts.append(Alert(
                        f"auto-rollback: {clean_text(panel.name, limit=60)}",
                        f"at {clock_text(live.rollback_at, seconds=True)} unless held: "
                        f"{clean_text(countdown_reason(live), limit=300)} — h holds, R rolls back now "
                        "(on the dashboard)",
                        bell=False, timeout=max(5.0, live.rollback_at - now),
                    ))
        self._primed = True
        return alerts
