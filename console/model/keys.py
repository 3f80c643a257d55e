"""Every key binding's id, so the config's [keymap] is checked before the UI starts.

The UI declares each `Binding` with one of these ids; a test keeps the two
lists equal. Ids name the place and the action ("flags-kill").
"""

from __future__ import annotations

BINDING_IDS: dict[str, str] = {
    "app-quit": "quit",
    "app-flags": "open the feature flags",
    "app-help": "show the keys",
    "services-order": "dashboard: services worst first, or in config order",
    "rollout-advance": "dashboard: advance the shown rollout (or start its next run)",
    "rollout-hold": "dashboard: hold the shown rollout, or resume it",
    "rollout-rollback": "dashboard: roll the shown rollout back (type its name)",
    "rollout-next": "dashboard: show the next rollout (with more than one)",
    "incident-declare": "dashboard: declare an incident (severity, title, services)",
    "incident-open": "dashboard: open the newest open incident",
    "strip-previous": "incidents strip: previous incident",
    "strip-next": "incidents strip: next incident",
    "strip-open": "incidents strip: open the incident under the cursor",
    "incident-back": "incident: back to the dashboard",
    "incident-ack": "incident: acknowledge it",
    "incident-status": "incident: change its status (a picker)",
    "incident-severity": "incident: change its severity (a picker and a reason)",
    "incident-note": "incident: add a note to its timeline",
    "incident-pin": "incident: pin or unpin a timeline entry",
    "incident-role": "incident: hand a role (commander, scribe, comms) over",
    "runbooks-open": "dashboard, incident: the runbooks (an incident's offered ones first)",
    "runbooks-back": "runbooks: back",
    "runbooks-start": "runbooks: start a run of the selected runbook, or resume an unfinished one",
    "runner-back": "runner: back (refused while a step runs: cancel it first)",
    "runner-run": "runner: run the selected step (previewed; a typed confirmation when it asks)",
    "runner-tick": "runner: tick the next check of a check step (t or space)",
    "runner-skip": "runner: skip the selected step, with a reason",
    "runner-retry": "runner: retry a stopped step (a reason when it was interrupted)",
    "runner-cancel": "runner: cancel the running step (its processes are stopped)",
    "runner-next": "runner: mark a note step read, or go to the run's current step",
    "runner-finish": "runner: finish the run (every step succeeded or skipped)",
    "demo-fault": "demo: inject a fault into the selected service",
    "demo-clear": "demo: clear the selected service's faults",
    "flags-back": "flags: back to the dashboard",
    "flags-toggle": "flags: turn the selected flag on or off",
    "flags-percent": "flags: set the rollout percentage",
    "flags-kill": "flags: kill switch",
    "flags-evaluate": "flags: evaluate a targeting key",
    "why-back": "why view: close",
    "help-back": "help: close",
    "help-back-2": "help: close (second key)",
    "help-back-3": "help: close (third key)",
    "modal-cancel": "dialogs: cancel",
    "modal-confirm": "incident dialogs: confirm (Enter, from any field)",
}
"""Binding id -> what it does."""
