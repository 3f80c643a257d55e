"""The postmortem: a scripted incident folded from events at fixed times, exported exactly.

The golden file is the whole Markdown of one incident that has every
section: a backdated detection, an acknowledgement, a severity change with a
reason, a commander handoff, a pinned note, a rollback and a runbook step,
health changes, an alert, graphs with a spike and a gap. Regenerate it after
an intended change with ``CONN_UPDATE_GOLDEN=1`` and read the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from console.model.events import GENESIS_HASH, Event, event_hash
from console.model.incident_config import DEFAULT_SEVERITIES
from console.model.incidents import (
    Change,
    IncidentState,
    acknowledge,
    add_note,
    alert_joined,
    alert_resolved,
    assign_role,
    open_incident,
    set_severity,
    set_status,
    stamp_milestone,
)
from console.model.postmortem import (
    graph_window,
    markdown_escape,
    postmortem,
    render_markdown,
    sparkline,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
GOLDEN = Path(__file__).parent / "golden" / "postmortem.md"


class Script:
    """One log: the incident's stream and, between its events, other streams' related events."""

    def __init__(self) -> None:
        self.state = IncidentState(1)
        self.position = 0

    def _event(self, stream: str, version: int, kind: str, payload: dict[str, Any], *, at: float,
               actor: str, reason: str = "") -> Event:
        self.position += 1
        fields: dict[str, Any] = {
            "id": f"e{self.position}", "stream": stream, "version": version, "type": kind, "time": at,
            "actor": actor, "reason": reason, "payload": json.loads(json.dumps(payload)),
            "prev_hash": GENESIS_HASH,
        }
        return Event(position=self.position, hash=event_hash(**fields), **fields)

    def add(self, changes: list[Change], *, at: float, actor: str = "alice", reason: str = "") -> None:
        for kind, payload in changes:
            event = self._event(self.state.stream, self.state.version + 1, kind, payload, at=at,
                                actor=actor, reason=reason)
            self.state = self.state.apply(event)

    def relate(self, stream: str, kind: str, text: str, *, at: float, actor: str = "conn-auto@bastion pid 7") -> None:
        event = self._event(stream, 1, "Related", {}, at=at, actor=actor)
        self.state = self.state.relate(event, kind, text)


def scripted() -> Script:
    s = Script()
    s.add(open_incident(s.state, title="Checkout errors after v1.43 canary", severity="SEV2",
                        services=["checkout-canary", "checkout"], started_at=T0, commander="alice"),
          at=T0 + 60)
    s.relate("health/checkout-canary", "health",
             "checkout-canary: ok → critical (errors 12.0% > 5.00%)", at=T0 + 70)
    s.add(stamp_milestone(s.state, "detected", T0 + 45, now=T0 + 100), at=T0 + 100)
    s.add(acknowledge(s.state), at=T0 + 150, actor="bob")
    s.add(alert_joined(s.state, fingerprint="a1b2", starts_at=T0 + 30, title="CheckoutErrorRate",
                       labels={"service": "checkout-canary", "severity": "page"}), at=T0 + 160,
          actor="conn-auto@bastion pid 7")
    s.add(set_severity(s.state, "SEV1"), at=T0 + 300, actor="bob", reason="every checkout fails")
    s.add(add_note(s.state, "cache misses spike on the canary; rolling back", pinned=True), at=T0 + 400,
          actor="bob")
    s.relate("rollout/checkout", "rollout", "checkout: rollback started (run 2): error_rate > 5% for 1m",
             at=T0 + 420, actor="bob")
    s.relate("runbook/cache-flush-1", "runbook", "step 2 flush the cache: ok", at=T0 + 450, actor="bob")
    s.add(assign_role(s.state, "commander", "carol"), at=T0 + 600)
    s.add(set_status(s.state, "mitigated", now=T0 + 900), at=T0 + 900, actor="carol")
    s.relate("health/checkout-canary", "health", "checkout-canary: critical → ok", at=T0 + 950)
    s.add(alert_resolved(s.state, fingerprint="a1b2", starts_at=T0 + 30), at=T0 + 960,
          actor="conn-auto@bastion pid 7")
    s.add(set_status(s.state, "resolved", now=T0 + 1800), at=T0 + 1800, actor="carol")
    return s


Series = list[tuple[float, float | None]]


def graphs() -> dict[str, dict[str, Series]]:
    since, until = graph_window(scripted().state, T0 + 3600)
    steps = [float(at) for at in range(int(since), int(until) + 1, 10)]
    spike: Series = [(at, 900.0 if T0 + 30 <= at <= T0 + 900 else 80.0) for at in steps]
    flat: Series = [(at, 75.0) for at in steps]
    errors = [(at, None if T0 + 1000 <= at < T0 + 1200 else 12.0 if T0 + 30 <= at <= T0 + 900 else 0.0)
              for at in steps]
    return {"checkout-canary": {"p95": spike, "error_rate": errors},
            "checkout": {"p95": flat, "error_rate": []}}


def document(state: IncidentState | None = None, **kw: Any) -> dict[str, Any]:
    return postmortem(state or scripted().state, severity_defs=DEFAULT_SEVERITIES,
                      graphs=kw.pop("graphs", graphs()), head_hash="ab" * 32, head_position=42,
                      generated_at=T0 + 3600, **kw)


def test_the_scripted_incident_exports_exactly_the_golden_markdown() -> None:
    markdown = render_markdown(document())
    if os.environ.get("CONN_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(markdown)
    assert markdown == GOLDEN.read_text()


def test_the_json_form_holds_the_same_record() -> None:
    doc = document()
    json.dumps(doc)  # plain data
    assert doc["durations"] == {"detect": 45.0, "acknowledge": 90.0, "mitigate": 900.0, "resolve": 1800.0}
    assert [r["user"] for r in doc["roles"]] == ["alice", "carol"]
    assert doc["roles"][0]["until"] == T0 + 600 and doc["roles"][1]["until"] is None
    assert [(h["severity"], h["reason"]) for h in doc["severity_history"]] == [
        ("SEV2", ""), ("SEV1", "every checkout fails")]
    assert [e["kind"] for e in doc["actions"]] == ["rollout", "runbook"]
    times = [e["at"] for e in doc["timeline"]]
    assert times == sorted(times) and times[0] == T0 + 45  # the backdated detection comes first
    assert [e["text"] for e in doc["timeline"] if e["pinned"]] == ["cache misses spike on the canary; rolling back"]
    canary = doc["graphs"]["checkout-canary"]
    assert canary["p95"]["peak"] == 900.0 and canary["p95"]["last"] == 80.0
    assert doc["graphs"]["checkout"]["error_rate"]["peak"] is None
    assert doc["audit_head"] == {"position": 42, "hash": "ab" * 32}
    assert doc["root_cause"] == "" and doc["follow_ups"] == []


def test_an_open_incident_reads_not_yet_and_graphs_up_to_now() -> None:
    s = Script()
    s.add(open_incident(s.state, title="payments slow", severity="SEV3", services=["payments"]), at=T0)
    doc = document(s.state, graphs={})
    assert doc["durations"] == {"detect": None, "acknowledge": None, "mitigate": None, "resolve": None}
    assert doc["window"] == {"since": T0 - 300, "until": T0 + 3600}
    markdown = render_markdown(doc)
    assert markdown.count("| not yet |") == 4
    assert "### payments\n\nNothing recorded." in markdown


HOSTILE = ("<script>alert(1)</script> | x | [click](http://evil) ![i](http://evil/i.png) "
           "`code` *b* _i_ ~~s~~ # h &amp; \\ \x1b[2J\x1b]8;;http://evil\x07link\x1b]8;;\x07 [bold]")


def incident_with(text: str, actor: str) -> IncidentState:
    s = Script()
    s.add(open_incident(s.state, title=text, severity="SEV2", services=["checkout"], commander=actor),
          at=T0, actor=actor)
    s.add(add_note(s.state, text + "\nsecond | line", pinned=True), at=T0 + 10, actor=actor)
    return s.state


def structure(markdown: str) -> list[str]:
    """The Markdown's token types, block and inline: what a renderer would build."""
    tokens = MarkdownIt("commonmark").enable("table").enable("strikethrough").parse(markdown)
    return [t.type for t in tokens for t in (t, *(t.children or ()))]


def test_outside_text_cannot_make_markdown_structure_or_html() -> None:
    markdown = render_markdown(document(incident_with(HOSTILE, "<b>mallory</b> | x"), graphs={}))
    plain = render_markdown(document(incident_with("plain words", "mallory"), graphs={}))
    assert "\x1b" not in markdown and "\x07" not in markdown
    # The same document structure as with harmless text: no element, cell, link or tag was made.
    assert structure(markdown) == structure(plain)
    html = MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown)
    assert "<script>" not in html and "<b>" not in html and "http://evil" not in html.replace(
        "[click](http://evil)", "").replace("![i](http://evil/i.png)", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | x | [click](http://evil)" in html
    assert "`code` *b* _i_ ~~s~~ # h &amp;amp; \\ link [bold]" in html
    assert "&lt;b&gt;mallory&lt;/b&gt; | x" in html


def test_markdown_escape_keeps_the_text_readable() -> None:
    assert markdown_escape("a|b <c> [d] `e` #f *g* _h_ \\") == "a\\|b \\<c\\> \\[d\\] \\`e\\` \\#f \\*g\\* \\_h\\_ \\\\"
    assert markdown_escape("plain words, 12.5% (ok)") == "plain words, 12.5% (ok)"
    assert markdown_escape("down\x1b[2J\r\nnow") == "down now"


def test_secrets_are_redacted_even_when_an_escape_sequence_splits_them() -> None:
    s = Script()
    s.add(open_incident(s.state, title="token hunter2 leaked", severity="SEV1", services=["checkout"]), at=T0)
    s.add(add_note(s.state, "tried hun\x1b[0mter2 on the API"), at=T0 + 5)

    def redact(text: str) -> str:
        return text.replace("hunter2", "«secret:api_token»")

    doc = document(s.state, graphs={}, redact=redact)
    for text in (json.dumps(doc, ensure_ascii=False), render_markdown(doc)):
        assert "hunter2" not in text and "hun" not in text.replace("«secret:api_token»", "")
        assert "«secret:api\\_token»" in text or "«secret:api_token»" in text


def test_a_spike_survives_bucketing_and_a_gap_reads_as_a_gap() -> None:
    assert sparkline([0.0, 50.0, 100.0, None]) == "▁▅█·"
    assert sparkline([None, None]) == "··"
    assert sparkline([3.0, 3.0]) == "██"  # scaled from 0: a flat line is not jitter
    points = [(T0 + i * 10.0, 1.0) for i in range(360)]
    points[100] = (points[100][0], 500.0)  # one 10-second spike in an hour
    s = Script()
    s.add(open_incident(s.state, title="x", severity="SEV3", services=["a"], started_at=T0 + 300), at=T0 + 300)
    graph = document(s.state, graphs={"a": {"p95": points}})["graphs"]["a"]["p95"]
    assert len(graph["sparkline"]) <= 60 and "█" in graph["sparkline"]


@settings(max_examples=150, deadline=None)
@given(
    started=st.floats(-3600, 0),
    stamps=st.lists(st.tuples(st.sampled_from(["detected", "mitigated"]), st.floats(-7200, 7200),
                              st.floats(0, 7200)), max_size=4),
    statuses=st.lists(st.tuples(st.sampled_from(["identified", "mitigated", "resolved", "investigating",
                                                 "postmortem_done"]), st.floats(0, 7200),
                                st.one_of(st.none(), st.floats(-7200, 7200))), max_size=5),
    ack=st.one_of(st.none(), st.floats(0, 7200)),
)
def test_durations_are_never_negative(
    started: float, stamps: list[tuple[str, float, float]],
    statuses: list[tuple[str, float, float | None]], ack: float | None,
) -> None:
    """Raw events, not deciders: even a milestone stamped before the start or a status backdated
    past its own event folds to durations that are None or ≥ 0."""
    s = Script()
    s.add(open_incident(s.state, title="t", severity="SEV2", services=["a"], started_at=T0 + started), at=T0)
    moves: list[tuple[float, Change]] = [
        (T0 + at, ("IncidentMilestoneStamped", {"id": "INC-1", "milestone": name, "at": T0 + when}))
        for name, when, at in stamps
    ]
    for status, at, backdated in statuses:
        payload: dict[str, Any] = {"id": "INC-1", "status": status}
        if backdated is not None:
            payload["at"] = T0 + backdated
        moves.append((T0 + at, ("IncidentStatusChanged", payload)))
    if ack is not None:
        moves.append((T0 + ack, ("IncidentAcknowledged", {"id": "INC-1"})))
    for at, change in sorted(moves, key=lambda m: m[0]):
        if change[0] == "IncidentStatusChanged" and change[1]["status"] == s.state.status:
            continue
        s.add([change], at=at)
    doc = document(s.state, graphs={})
    assert all(value is None or value >= 0 for value in doc["durations"].values()), doc["durations"]
    assert "-" not in "".join(line.split("|")[2] for line in render_markdown(doc).splitlines()
                              if line.startswith(("| detect", "| acknowledge", "| mitigate", "| resolve")))
