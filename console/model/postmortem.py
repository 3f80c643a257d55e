"""The postmortem: an incident's record as one document, folded from the audit log.

Nobody writes the first draft of a postmortem from chat scroll-back any
more: the incident's stream already holds who declared what and when, every
severity and status change, the roles and their handoffs, the notes, and —
joined by the engine — the rollout stages, flag flips, health changes and
runbook steps of its services. :func:`postmortem` folds that into a JSON
document (``conn incident export --format json``) and :func:`render_markdown`
writes the same document as Markdown, so the two forms never disagree.

Everything that came from outside (titles, notes, actors, alert labels) is
cleaned with :func:`~console.model.sanitize.clean_text` and passed through
the caller's ``redact`` (this layer cannot see the secret registry; the CLI
passes :func:`console.secrets.redact`). The Markdown additionally escapes
what would make structure — ``\\ ` * _ [ ] < > # | ~ & !`` — so a title
such as ``<img src=x onerror=…>`` or ``| fake | row |`` reads as the
characters it is, in a table cell or a heading alike.

Durations are :func:`~console.model.incidents.durations` (never negative;
None reads "not yet"), spelled as rollouts spell a length of time
(:func:`~console.model.gates_parse.span_text`: "12m 34s").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from console.model.gates_parse import span_text
from console.model.history import SLICE_SECONDS
from console.model.incident_config import Severity, SeverityConfig
from console.model.incidents import Entry, IncidentState, RoleInterval, durations
from console.model.sanitize import clean_text
from console.model.units import format_value

__all__ = [
    "ACTION_KINDS", "FORMAT", "GRAPH_SIGNALS", "Points", "alerts_json", "graph_window",
    "markdown_escape", "postmortem", "render_markdown", "roles_json", "sparkline", "timeline_json",
]

FORMAT = "conn-postmortem/1"
"""The JSON document's ``format``: scripts can tell a later shape from this one."""
GRAPH_SIGNALS: tuple[tuple[str, str], ...] = (("p95", "ms"), ("error_rate", "%"))
"""The signals graphed per service, with their units."""
LEAD_IN = 300.0
"""Seconds before the incident started that its graphs also show: what normal looked like."""
GRAPH_WIDTH = 60
"""The most columns a sparkline has (one Markdown line in any viewer)."""
ACTION_KINDS = ("rollout", "runbook")
"""Timeline entries listed again under "Rollout actions and runbook steps"."""
MAX_TEXT = 8000
"""Longest outside string kept (notes are at most 4000 characters)."""
BARS = "▁▂▃▄▅▆▇█"
MISSING = "·"
"""A column with nothing recorded: a gap, never a low bar."""

Points = Sequence[tuple[float, float | None]]
"""A signal's history, oldest first: ``(slice start, value or None)``."""

_DURATIONS = (  # (name, from milestone, to milestone)
    ("detect", "started", "detected"),
    ("acknowledge", "declared", "acknowledged"),
    ("mitigate", "started", "mitigated"),
    ("resolve", "started", "resolved"),
)


class HasState(Protocol):
    """An engine's ``IncidentPanel`` (or anything else carrying a folded incident)."""

    @property
    def state(self) -> IncidentState: ...


def _same(text: str) -> str:
    return text


def _utc(at: float | None) -> str:
    if at is None:
        return "—"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def graph_window(state: IncidentState, now: float) -> tuple[float, float]:
    """The span the graphs cover: :data:`LEAD_IN` before the start, to the resolution (or ``now``)."""
    started = state.milestones.get("started", state.declared_at)
    end = now if state.is_open else state.milestones.get("resolved", now)
    return started - LEAD_IN, max(end, started)


# --- the JSON document -------------------------------------------------------------


def postmortem(
    incident: IncidentState | HasState,
    *,
    severity_defs: Mapping[Severity, SeverityConfig],
    graphs: Mapping[str, Mapping[str, Points]],
    head_hash: str | None,
    generated_at: float,
    timeline: Sequence[Entry] | None = None,
    head_position: int | None = None,
    redact: Callable[[str], str] = _same,
) -> dict[str, Any]:
    """The postmortem of one incident as plain JSON-able data.

    Args:
        incident: the folded incident (or a panel holding it).
        severity_defs: each severity's definition (the summary quotes the current one).
        graphs: per service, per signal (:data:`GRAPH_SIGNALS`), its recorded
            points over :func:`graph_window`.
        head_hash: the hash of the newest event of the log when exported (None: empty log).
        generated_at: when the document is made (the clock of open incidents' windows).
        timeline: the entries to list (default: the incident's own, which are all of
            them up to :data:`~console.model.incidents.MAX_ENTRIES`).
        head_position: that newest event's position.
        redact: hides secrets in every outside string.

    Returns:
        The document (see ``conn incident export --help``); times are epoch seconds.
    """
    state = incident if isinstance(incident, IncidentState) else incident.state

    def text(value: str) -> str:
        # Redact before cleaning too: an escape sequence inside a secret must not hide it.
        return redact(clean_text(redact(value), limit=MAX_TEXT))

    entries = timeline_json(timeline if timeline is not None else state.entries, redact)
    definition = severity_defs.get(state.severity)
    since, until = graph_window(state, generated_at)
    commander = state.holder("commander")
    return {
        "format": FORMAT,
        "generated_at": generated_at,
        "summary": {
            "id": state.id,
            "title": text(state.title),
            "services": [text(s) for s in state.services],
            "severity": state.severity,
            "severity_definition": text(definition.description) if definition else "",
            "respond_within": definition.respond if definition else None,
            "status": state.status,
            "reopened": state.reopened,
            "declared_at": state.declared_at,
            "declared_by": text(state.declared_by),
            "started_at": state.milestones.get("started", state.declared_at),
            "acknowledged_by": text(state.acknowledged_by) if state.acknowledged_by else None,
            "commander": text(commander) if commander else None,
            "automatic": state.automatic,
            "trigger": text(str(state.trigger.get("kind", ""))) if state.trigger else None,
        },
        "severity_history": [
            {"at": at, "severity": severity, "by": text(by), "reason": text(reason)}
            for at, severity, by, reason in state.severity_history
        ],
        "status_history": [
            {"at": at, "status": status, "by": text(by)} for at, status, by in state.status_history
        ],
        "milestones": {"declared": state.declared_at, **state.milestones},
        "durations": durations(state),
        "roles": roles_json(state.roles, redact),
        "timeline": entries,
        "actions": [entry for entry in entries if entry["kind"] in ACTION_KINDS],
        "alerts": alerts_json(state, redact),
        "graphs": {
            text(service): {
                signal: _graph(points, unit, since, until)
                for signal, unit in GRAPH_SIGNALS
                if (points := graphs.get(service, {}).get(signal)) is not None
            }
            for service in state.services
        },
        "window": {"since": since, "until": until},
        "audit_head": {"position": head_position, "hash": head_hash},
        "root_cause": "",
        "follow_ups": [],
    }


def timeline_json(entries: Sequence[Entry], redact: Callable[[str], str] = _same) -> list[dict[str, Any]]:
    """Timeline entries in time order (a backdated milestone sits at the time it names)."""
    def text(value: str) -> str:
        return redact(clean_text(redact(value), limit=MAX_TEXT))

    return [
        {"position": e.position, "at": e.at, "actor": text(e.actor), "kind": e.kind,
         "text": text(e.text), "pinned": e.pinned, "stream": text(e.stream)}
        for e in sorted(entries, key=lambda e: (e.at, e.position))
    ]


def roles_json(roles: Sequence[RoleInterval], redact: Callable[[str], str] = _same) -> list[dict[str, Any]]:
    """Who held which role from when until when (``until`` None: holds it still)."""
    def text(value: str) -> str:
        return redact(clean_text(redact(value), limit=MAX_TEXT))

    return [{"role": r.role, "user": text(r.user), "since": r.since, "until": r.until, "by": text(r.by)}
            for r in roles]


def alerts_json(state: IncidentState, redact: Callable[[str], str] = _same) -> list[dict[str, Any]]:
    """The Alertmanager alert occurrences that joined the incident, oldest first."""
    def text(value: str) -> str:
        return redact(clean_text(redact(value), limit=MAX_TEXT))

    return [
        {"fingerprint": text(a.fingerprint), "title": text(a.title), "starts_at": a.starts_at,
         "joined_at": a.joined_at, "resolved_at": a.resolved_at,
         "labels": {text(k): text(v) for k, v in sorted(a.labels.items())}}
        for a in sorted(state.alerts.values(), key=lambda a: (a.joined_at, a.fingerprint))
    ]


def _graph(points: Points, unit: str, since: float, until: float) -> dict[str, Any]:
    inside = [(at, v if v is not None and math.isfinite(v) else None) for at, v in points
              if since <= at <= until]
    present = [v for _, v in inside if v is not None]
    columns = _columns(inside, since, until)
    return {
        "unit": unit,
        "points": [[at, v] for at, v in inside],
        "sparkline": sparkline(columns),
        "peak": max(present) if present else None,
        "last": present[-1] if present else None,
    }


def _columns(points: Points, since: float, until: float) -> list[float | None]:
    """Points bucketed into at most :data:`GRAPH_WIDTH` columns: each the highest value in it
    (an incident's spike must not average away), None where nothing was recorded."""
    span = max(until - since, SLICE_SECONDS)
    step = max(span / GRAPH_WIDTH, SLICE_SECONDS)
    count = min(GRAPH_WIDTH, math.ceil(span / step))
    columns: list[float | None] = [None] * count
    for at, value in points:
        if value is None:
            continue
        index = min(count - 1, int((at - since) // step))
        current = columns[index]
        columns[index] = value if current is None else max(current, value)
    return columns


def sparkline(values: Sequence[float | None]) -> str:
    """Block characters scaled from 0 to the highest value; :data:`MISSING` where there is none.

    (The UI's sparkline widget has its own: the model cannot import the UI.)
    """
    present = [v for v in values if v is not None]
    top = max(present, default=0.0)
    bottom = min(0.0, min(present, default=0.0))
    span = top - bottom
    out = []
    for value in values:
        if value is None:
            out.append(MISSING)
        elif span <= 0:
            out.append(BARS[0])
        else:
            out.append(BARS[round((value - bottom) / span * (len(BARS) - 1))])
    return "".join(out)


# --- Markdown ------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&!])")


def markdown_escape(text: str) -> str:
    """One line of outside text that Markdown shows as itself: no escape sequences or
    control characters, and every character that could start structure or HTML escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", clean_text(text, limit=MAX_TEXT))


def _span(seconds: float | None) -> str:
    return "not yet" if seconds is None else span_text(round(seconds))


def render_markdown(doc: Mapping[str, Any]) -> str:
    """The postmortem document (:func:`postmortem`) as Markdown, ending in a newline."""
    md = markdown_escape
    s = doc["summary"]
    status = str(s["status"]).replace("_", " ") + (
        f" (reopened {s['reopened']}×)" if s["reopened"] else "")
    declared = f"{_utc(s['declared_at'])} by {md(s['declared_by'])}" + (
        f" (automatically, on {md(s['trigger'])})" if s["automatic"] and s["trigger"] else "")
    lines = [
        f"# Postmortem: {s['id']} — {md(s['title'])}", "",
        f"Generated {_utc(doc['generated_at'])} by Conn from its audit log. All times are UTC.", "",
        "## Summary", "",
        f"- **Incident:** {s['id']}",
        f"- **Title:** {md(s['title'])}",
        f"- **Services:** {', '.join(md(x) for x in s['services']) or 'none'}",
        f"- **Severity:** {s['severity']}" + (f" — {md(s['severity_definition'])}"
                                                if s["severity_definition"] else ""),
        f"- **Status:** {status}",
        f"- **Declared:** {declared}",
        f"- **Started:** {_utc(s['started_at'])}",
        f"- **Commander:** {md(s['commander']) if s['commander'] else 'nobody'}",
        "", "## Severity history", "",
    ]
    for i, row in enumerate(doc["severity_history"]):
        why = f": {md(row['reason'])}" if row["reason"] else ""
        verb = "declared" if i == 0 else "changed to"
        lines.append(f"- {_utc(row['at'])} — {verb} {row['severity']} by {md(row['by'])}{why}")
    lines += ["", "## Durations", "", "| Time to | Duration | From | To |", "|---|---|---|---|"]
    milestones = doc["milestones"]
    for name, origin, end in _DURATIONS:
        lines.append(f"| {name} | {_span(doc['durations'][name])} | {origin} {_utc(milestones.get(origin))} "
                     f"| {end} {_utc(milestones.get(end))} |")
    lines += ["", "## Roles over time", ""]
    for row in doc["roles"]:
        until = _utc(row["until"]) if row["until"] is not None else "the end"
        lines.append(f"- {row['role']}: {md(row['user'])}, {_utc(row['since'])} → {until}"
                     + (f" (by {md(row['by'])})" if row["by"] and row["by"] != row["user"] else ""))
    if not doc["roles"]:
        lines.append("Nobody held a role.")
    lines += ["", "## Timeline", "", "★ marks a pinned entry; # is the event's position in the log.", ""]
    lines += _entries(doc["timeline"])
    lines += ["", "## Rollout actions and runbook steps", ""]
    lines += _entries(doc["actions"]) if doc["actions"] else ["None recorded."]
    lines += ["", "## Alerts", ""]
    for alert in doc["alerts"]:
        resolved = f", resolved {_utc(alert['resolved_at'])}" if alert["resolved_at"] is not None else ""
        lines.append(f"- {md(alert['title'])}: firing since {_utc(alert['starts_at'])}, joined "
                     f"{_utc(alert['joined_at'])}{resolved}")
    if not doc["alerts"]:
        lines.append("None joined.")
    lines += ["", "## Signals", "", _window_text(doc), ""]
    for service in doc["summary"]["services"]:
        lines += [f"### {md(service)}", ""]
        graphs = doc["graphs"].get(service) or {}
        if not graphs:
            lines += ["Nothing recorded.", ""]
            continue
        for signal, graph in graphs.items():
            if graph["peak"] is None:
                lines.append(f"    {signal:<10}  nothing recorded")
                continue
            peak, last = (format_value(graph[k], graph["unit"]) for k in ("peak", "last"))
            lines.append(f"    {signal:<10}  {graph['sparkline']}  peak {peak}, last {last}")
        lines.append("")
    head = doc["audit_head"]
    lines += ["## Audit chain", ""]
    if head["hash"]:
        where = f" #{head['position']}" if head["position"] is not None else ""
        lines.append(f"Head of the log when exported: event{where}, hash `{head['hash']}`. "
                     "`conn audit --verify` recomputes the chain up to it.")
    else:
        lines.append("The log was empty.")
    lines += ["", "## Root cause", "", "_To be written._", "", "## Follow-ups", "", "_To be written._", ""]
    return "\n".join(lines)


def _entries(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = ["| Time | # | Actor | Kind | Entry |", "|---|---|---|---|---|"]
    for e in entries:
        mark = "★ " if e["pinned"] else ""
        rows.append(f"| {_utc(e['at'])} | {e['position']} | {markdown_escape(e['actor']) or 'Conn'} "
                    f"| {e['kind']} | {mark}{markdown_escape(e['text'])} |")
    return rows


def _window_text(doc: Mapping[str, Any]) -> str:
    window = doc["window"]
    return (f"From {_utc(window['since'])} ({span_text(LEAD_IN)} before the start) to "
            f"{_utc(window['until'])}; each column is the highest value in its share of that span, "
            f"{MISSING} where nothing was recorded.")
