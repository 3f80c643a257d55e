"""What an event changed, in a few words: the one description every view shows.

A kill, an off → on and a 0% → 10% are all ``FlagChanged``; the type says
that something changed, the payload says what. The dashboard's activity
pane, ``conn audit`` and the "someone changed it first" error all call
:func:`describe_change`, so the same event reads the same everywhere.

Payloads come from the log, which other Conn versions (or a hand-edited
database) may have written: nothing here trusts their shape. A field of the
wrong type reads "?", an unknown event type reads as its type, and every
piece of outside text is cleaned (:func:`console.model.sanitize.clean_text`)
and clipped. Views still escape markup: this module returns plain text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from console.model.events import Event
from console.model.flags import (
    FLAG_CHANGED,
    FLAG_CREATED,
    GROUP_CHANGED,
    GROUP_CREATED,
    GROUP_STREAM,
    TOTAL_WEIGHT,
    format_percent,
)
from console.model.sanitize import clean_text
from console.model.text import plural

KEYS_SHOWN = 2
"""Allowlist or group entries named before "+N more"."""

NAME_LIMIT = 40
"""The most characters of a key, group or type name shown."""

_OTHER_FIELDS = (
    ("description", "description changed"),
    ("variants", "variants changed"),
    ("on_variant", "on variant changed"),
    ("off_variant", "off variant changed"),
)


def describe_change(event: Event) -> str:
    """What ``event`` changed, for people: one short, clean line, never an exception.

    * Flag created: ``created (10%, off)``, with its allowlist and groups
      when it has them (``created (0%, on, 2 keys allowed, 1 group)``).
    * Flag changed, each difference between ``before`` and ``after`` in
      this order, joined by ", ": ``kill`` / ``kill lifted``, ``off → on`` /
      ``on → off``, ``0% → 10%``, ``allowlist +qa-1`` (added and removed
      keys, the first two named: ``allowlist −qa-1, +2 more``), ``groups
      +internal``, and ``description changed`` or ``variants changed``.
    * Group created or changed: ``group internal created: 3 keys``,
      ``group internal: 3 keys (+1 −0)``.
    * Anything else, or a flag or group event whose payload is not the
      shape above: the event's type (``RolloutStarted``), with the payload's
      ``change`` word when it has one (``FlagChanged (kill)``).
    """
    payload = event.payload if isinstance(event.payload, Mapping) else {}
    before, after = _mapping(payload.get("before")), _mapping(payload.get("after"))
    described: str | None = None
    if event.type == FLAG_CREATED and after is not None:
        described = _flag_created(after)
    elif event.type == FLAG_CHANGED and before is not None and after is not None:
        described = _flag_changed(before, after) or _change_word(payload) or "no change"
    elif event.type in (GROUP_CREATED, GROUP_CHANGED) and after is not None:
        described = _group(event, payload, before, after)
    elif event.type in _ROLLOUT:
        described = _rollout(event.type, payload)
    elif event.type in _INCIDENT:
        described = _incident(event.type, payload)
    elif event.type == "HealthChanged":
        why = payload.get("why")
        described = (f"{_clean(payload.get('from', '?'))} → {_clean(payload.get('to', '?'))}"
                     + (f" ({_clean(why)})" if isinstance(why, str) and why else ""))
    elif event.type.startswith("runbook."):
        described = _runbook(event.type, payload)
    return described if described is not None else _fallback(event.type, payload)


# --- rollouts ------------------------------------------------------------------------

_ROLLOUT = frozenset({
    "RolloutStarted", "StageEntered", "RolloutAdvanced", "RolloutHeld", "RolloutResumed",
    "RollbackStarted", "RollbackFinished", "RolloutCompleted", "ActionStarted",
    "ActionFinished", "ActionFailed",
})


def _rollout(kind: str, payload: Mapping[str, Any]) -> str | None:
    """A rollout event in words: "run 2 started", "stage 2 (10%) entered", "rollback started (automatic: …)"."""
    run = payload.get("run")
    run_text = f"run {run}" if isinstance(run, int) and not isinstance(run, bool) else "a run"
    if kind == "RolloutStarted":
        stages = _keys(payload.get("stages"))
        return f"{run_text} started" + (f" ({_clean(' → '.join(stages[:6]))})" if stages else "")
    if kind == "StageEntered":
        index, name = payload.get("index"), payload.get("name")
        number = f"stage {index + 1}" if isinstance(index, int) and not isinstance(index, bool) else "a stage"
        return f"{number} ({_clean(name)}) entered" if isinstance(name, str) else f"{number} entered"
    if kind == "RolloutAdvanced":
        override = payload.get("override")
        over = f" over a failing gate: {_clean(override)}" if isinstance(override, str) and override else ""
        who = " (automatic)" if payload.get("automatic") is True else ""
        return f"advanced{who}{over}"
    if kind == "RolloutHeld":
        return "held" + (" (with an expiry)" if payload.get("until") is not None else "")
    if kind == "RolloutResumed":
        return "hold expired" if payload.get("expired") is True else "resumed"
    if kind == "RollbackStarted":
        criterion = payload.get("criterion")
        how = "automatic" if payload.get("automatic") is True else "by hand"
        return f"rollback started ({how}" + (f": {_clean(criterion)})" if isinstance(criterion, str) else ")")
    if kind == "RollbackFinished":
        return f"{run_text} rolled back"
    if kind == "RolloutCompleted":
        return f"{run_text} complete"
    action, detail = payload.get("action"), payload.get("detail") or payload.get("error") or payload.get("description")
    name = _clean(action) if isinstance(action, str) else "an action"
    verb = {"ActionStarted": "started", "ActionFinished": "done", "ActionFailed": "FAILED"}[kind]
    return f"{name} {verb}" + (f": {_clean(detail)}" if isinstance(detail, str) and detail else "")


# --- incidents and runbooks ------------------------------------------------------------

_INCIDENT = frozenset({
    "IncidentOpened", "IncidentAcknowledged", "IncidentStatusChanged", "IncidentSeverityChanged",
    "IncidentRoleAssigned", "IncidentNoted", "IncidentPinned", "IncidentJoined",
    "IncidentMilestoneStamped", "IncidentAlertJoined", "IncidentAlertResolved",
})


def _incident(kind: str, p: Mapping[str, Any]) -> str | None:
    """An incident event in words: "SEV2 declared: checkout errors", "status: identified → mitigated"."""
    if kind == "IncidentOpened":
        return f"{_clean(p.get('severity', '?'))} declared: {_clean(p.get('title', ''))}"
    if kind == "IncidentAcknowledged":
        return "acknowledged"
    if kind == "IncidentStatusChanged":
        before, after = str(p.get("from", "?")), str(p.get("status", "?"))
        return f"status: {_clean(before.replace('_', ' '))} → {_clean(after.replace('_', ' '))}"
    if kind == "IncidentSeverityChanged":
        return f"severity: {_clean(p.get('from', '?'))} → {_clean(p.get('severity', '?'))}"
    if kind == "IncidentRoleAssigned":
        return f"{_clean(p.get('role', 'role'))}: {_clean(p.get('user', '?'))}"
    if kind == "IncidentNoted":
        return f"note: {_clean(p.get('text', ''))}"
    if kind == "IncidentPinned":
        return f"entry #{_clean(p.get('entry', '?'))} {'pinned' if p.get('pinned') else 'unpinned'}"
    if kind == "IncidentJoined":
        return _clean(p.get("entry") or "joined")
    if kind == "IncidentMilestoneStamped":
        return f"{_clean(p.get('milestone', 'milestone'))} stamped"
    if kind == "IncidentAlertJoined":
        return f"alert firing: {_clean(p.get('title', ''))}"
    return f"alert resolved: {_clean(p.get('fingerprint', ''))}"


def _runbook(kind: str, p: Mapping[str, Any]) -> str:
    """A runbook run's event in words: "step 2 (restart-api) finished: exit 0 in 1.2s"."""
    step = p.get("step")
    title = p.get("title")
    name = f"step {step}" if isinstance(step, int) and not isinstance(step, bool) else "a step"
    if isinstance(title, str) and title:
        name += f" ({_clean(title)})"
    what = kind.removeprefix("runbook.").replace("_", " ")
    if kind == "runbook.started":
        return f"runbook {_clean(p.get('runbook', '?'))} started"
    if kind in ("runbook.finished", "runbook.abandoned"):
        reason = p.get("reason")
        return f"run {what}" + (f": {_clean(reason)}" if isinstance(reason, str) and reason else "")
    verb = what.removeprefix("step ")
    outcome = p.get("outcome")
    if kind == "runbook.step_failed" and isinstance(outcome, str) and outcome != "failed":
        verb = outcome.replace("_", " ")  # "timed out", "cancelled", "interrupted"
    parts = [f"{name} {verb}"]
    code, duration = p.get("exit_code"), p.get("duration")
    if isinstance(code, int) and not isinstance(code, bool):
        parts.append(f"exit {code}")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        parts.append(f"in {duration:.1f}s")
    reason = p.get("reason")
    if not reason and (outcome == "interrupted" or (
            outcome == "failed" and not (isinstance(code, int) and not isinstance(code, bool)))):
        reason = p.get("error")  # why it could not start, or that it may have run
    if isinstance(reason, str) and reason:
        parts.append(_clean(reason))
    return parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")


# --- flags -----------------------------------------------------------------------------


def _flag_created(after: Mapping[str, Any]) -> str:
    parts = [_percent(after.get("on_weight")), _switch(after)]
    allow, groups = _keys(after.get("allow")), _keys(after.get("groups"))
    if allow:
        parts.append(f"{plural(len(allow), 'key')} allowed")
    if groups:
        parts.append(plural(len(groups), "group"))
    return f"created ({', '.join(parts)})"


def _flag_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    parts: list[str] = []
    was_killed, is_killed = bool(before.get("killed")), bool(after.get("killed"))
    if was_killed != is_killed:
        parts.append("kill" if is_killed else "kill lifted")
    was_on, is_on = bool(before.get("enabled")), bool(after.get("enabled"))
    if was_on != is_on:
        parts.append("off → on" if is_on else "on → off")
    if before.get("on_weight") != after.get("on_weight"):
        parts.append(f"{_percent(before.get('on_weight'))} → {_percent(after.get('on_weight'))}")
    for field, label in (("allow", "allowlist"), ("groups", "groups")):
        if entries := _entries(_keys(before.get(field)), _keys(after.get(field))):
            parts.append(f"{label} {entries}")
    parts.extend(text for field, text in _OTHER_FIELDS if before.get(field) != after.get(field))
    return ", ".join(parts)


def _switch(state: Mapping[str, Any]) -> str:
    """"killed", "on" or "off": what the flag serves, in the order flagd applies them."""
    if bool(state.get("killed")):
        return "killed"
    return "on" if bool(state.get("enabled")) else "off"


def _percent(weight: object) -> str:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= TOTAL_WEIGHT:
        return "?"
    return format_percent(weight)


def _entries(before: list[str], after: list[str]) -> str:
    """``+qa-1, −qa-2, +3 more``: what was added, then what was removed, the first few named."""
    had, has = set(before), set(after)
    changes = [("+", k) for k in after if k not in had] + [("−", k) for k in before if k not in has]
    shown = ", ".join(sign + clean_text(k, NAME_LIMIT) for sign, k in changes[:KEYS_SHOWN])
    more = len(changes) - KEYS_SHOWN
    return f"{shown}, +{more} more" if more > 0 else shown


# --- groups ----------------------------------------------------------------------------


def _group(
    event: Event,
    payload: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> str | None:
    keys = after.get("keys")
    if not isinstance(keys, list | tuple):
        return None
    name = payload.get("group")
    if not isinstance(name, str) or not name:
        name = event.stream.removeprefix(GROUP_STREAM)
    name = clean_text(name, NAME_LIMIT)
    now = set(_keys(keys))
    if before is None:
        return f"group {name} created: {plural(len(now), 'key')}"
    had = set(_keys(before.get("keys")))
    added, removed = len(now - had), len(had - now)
    return f"group {name}: {plural(len(now), 'key')} (+{added} −{removed})"


# --- anything else ---------------------------------------------------------------------


def _fallback(kind: str, payload: Mapping[str, Any]) -> str:
    name = clean_text(kind, NAME_LIMIT).strip() if isinstance(kind, str) else ""
    word = _change_word(payload)
    if not name:
        return word or "event"
    return f"{name} ({word})" if word else name


def _change_word(payload: Mapping[str, Any]) -> str:
    word = payload.get("change")
    return clean_text(word, NAME_LIMIT).strip() if isinstance(word, str) else ""


def _mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _keys(value: object) -> list[str]:
    """A list of keys or group names as strings; anything that is not a list is empty.

    Not cleaned here: a group may hold 10,000 keys and only the few shown are cleaned.
    """
    if not isinstance(value, list | tuple):
        return []
    return [k if isinstance(k, str) else str(k) for k in value]


def _clean(value: object) -> str:
    """One short clean line of outside text (a stage name, a reason, an action's output)."""
    return clean_text(str(value), 120).strip()
