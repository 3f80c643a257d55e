"""The journal of what an engine saw: health changes, threshold breaches and recoveries.

``conn agent`` logs these lines (systemd's journal keeps them), so an
operator reading the log after the night knows when payments went down, when
its error rate crossed 5 % and when it came back — in the same words as the
console ("errors 7.70% > 5.00%").

Only current states are logged: a live row left by a previous run (stale
when the agent starts) is not reported as if it were happening now; the
service's first line comes with its first fresh value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from console.engine.snapshot import Snapshot
from console.model.sanitize import clean_text
from console.model.triage import breach_text

Level = str
"""A ``logging`` level name: "INFO" or "WARNING"."""

_JUDGED = ("ok", "warning", "critical")


@dataclass
class Journal:
    """Compares each snapshot with what was last reported; returns the lines to log."""

    _health: dict[str, str] = field(default_factory=dict)
    _signals: dict[tuple[str, str], str] = field(default_factory=dict)

    def lines(self, snapshot: Snapshot, now: float) -> list[tuple[Level, str]]:
        out: list[tuple[Level, str]] = []
        for view in snapshot.services:
            if view.live is None or not view.fresh(now):
                continue  # nothing current to report (a previous run's row, or none yet)
            live = view.live
            if self._health.get(view.name) != live.health:
                first = view.name not in self._health
                self._health[view.name] = live.health
                level = "WARNING" if live.health in ("down", "degraded") else "INFO"
                verb = "is" if first else "is now"
                out.append((level, f"{view.name} {verb} {live.health}: {_clip(live.reason)}"))
            for signal in live.signals:
                if signal.state not in _JUDGED or signal.threshold is None:
                    continue
                key = (view.name, signal.name)
                before = self._signals.get(key)
                self._signals[key] = signal.state
                if before == signal.state or (before is None and signal.state == "ok"):
                    continue
                if signal.state == "ok":
                    out.append(("INFO", f"{view.name}: {signal.name} recovered: {_clip(breach_text(signal))}"))
                else:
                    since = signal.threshold.past_since
                    lasted = f" for {now - since:.0f}s" if since is not None and now > since else ""
                    out.append(("WARNING", f"{view.name}: {signal.name} {signal.state}{lasted}: "
                                           f"{_clip(breach_text(signal))}"))
        return out


def _clip(text: str) -> str:
    return clean_text(text, limit=200)
