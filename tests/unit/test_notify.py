"""Chat-out notifications, the pure half: config, the JSON contract, Slack's blocks, backoff."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from console.config import describe_validation_errors
from console.model.notify import (
    BACKOFF_CAP,
    NOTICE_TYPES,
    SLACK_LIMITS,
    Notice,
    NotifyConfig,
    backoff,
    render_json,
    render_slack,
    slack_escape,
    wants,
)

WHEN = 1773480413.589  # 2026-03-14T09:26:53.589Z
HOOK = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"


def severity_notice(**changes: Any) -> Notice:
    fields: dict[str, Any] = {
        "key": "4711",
        "type": "incident.severity",
        "summary": "INC-3 raised from SEV3 to SEV2 by alice",
        "time": WHEN,
        "incident": "INC-3",
        "title": "Checkout errors",
        "severity": "SEV2",
        "status": "investigating",
        "services": ("checkout", "payments"),
        "actor": "alice",
        "detail": "error_rate > 5% for 5m\nerror_rate 7.1% at 09:26",
        "environment": "production",
    }
    fields.update(changes)
    return Notice(**fields)


def rollback_notice(**changes: Any) -> Notice:
    fields: dict[str, Any] = {
        "key": "rollout/checkout:12",
        "type": "rollout.rollback",
        "summary": "Rolled back checkout at stage 10%: error_rate 7.1% > 5% for 5m",
        "time": WHEN,
        "detail": "criterion: error_rate > 5% for 5m\nevidence: 7.1% over 1,204 requests",
    }
    fields.update(changes)
    return Notice(**fields)


def slack_texts(message: dict[str, Any]) -> list[str]:
    """Every text Slack will show: the fallback and each text object in the blocks."""
    texts = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(field["text"] for field in block.get("fields", []))
        texts.extend(element["text"] for element in block.get("elements", []))
    return texts


def width(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def assert_within_slack_limits(message: dict[str, Any]) -> None:
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= SLACK_LIMITS["blocks"]
    assert width(message["text"]) <= SLACK_LIMITS["text"]
    for block in blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < width(block["text"]["text"]) <= SLACK_LIMITS["header"]
        elif block["type"] == "section":
            if "text" in block:
                assert 0 < width(block["text"]["text"]) <= SLACK_LIMITS["section"]
            fields = block.get("fields", [])
            assert len(fields) <= SLACK_LIMITS["fields"]
            assert all(0 < width(field["text"]) <= SLACK_LIMITS["field"] for field in fields)
            assert "text" in block or fields
        else:
            assert block["type"] == "context"
            assert 1 <= len(block["elements"]) <= SLACK_LIMITS["context_elements"]
            assert all(0 < width(e["text"]) <= SLACK_LIMITS["section"] for e in block["elements"])


# --- the generic JSON event ---------------------------------------------------------


def test_json_event_is_the_documented_contract() -> None:
    assert render_json(severity_notice()) == {
        "type": "incident.severity",
        "idempotency_key": "4711",
        "time": "2026-03-14T09:26:53.589Z",
        "environment": "production",
        "incident": {
            "id": "INC-3",
            "title": "Checkout errors",
            "severity": "SEV2",
            "status": "investigating",
            "services": ["checkout", "payments"],
        },
        "services": ["checkout", "payments"],
        "summary": "INC-3 raised from SEV3 to SEV2 by alice",
        "actor": "alice",
        "detail": "error_rate > 5% for 5m\nerror_rate 7.1% at 09:26",
    }


def test_json_event_without_an_incident_has_null_incident() -> None:
    event = render_json(rollback_notice())
    assert event["incident"] is None
    assert (event["type"], event["actor"], event["environment"]) == ("rollout.rollback", "", "")
    assert event["detail"].splitlines() == [
        "criterion: error_rate > 5% for 5m",
        "evidence: 7.1% over 1,204 requests",
    ]
    json.dumps(event, allow_nan=False)  # sendable as is


def test_json_event_strips_terminal_escapes_and_keeps_markup_literal() -> None:
    event = render_json(severity_notice(
        title="\x1b]8;;http://evil.example/\x07Checkout\x1b]8;;\x07 [bold]down[/bold]\x1b[2J",
        summary="line one\nline two\r\x1b[31mred\x1b[0m",
        detail="first\x1b[2J\n\x9b31msecond\x07",
        services=("checkout\x1b[1m", "\u202epayments"),
    ))
    incident = event["incident"]
    assert incident["title"] == "Checkout [bold]down[/bold]"
    assert event["summary"] == "line one line two red"
    assert event["detail"] == "first\nsecond"
    assert incident["services"] == ["checkout", "payments"]
    assert "\x1b" not in json.dumps(event)


def test_json_event_survives_a_lone_surrogate() -> None:
    event = render_json(severity_notice(title="bad \ud800 half"))
    json.dumps(event, ensure_ascii=False).encode("utf-8")  # would raise on the surrogate
    assert event["incident"]["title"].startswith("bad ")


def test_json_event_bounds_long_fields() -> None:
    event = render_json(severity_notice(
        title="t" * 10_000, summary="s" * 10_000, detail="d" * 100_000, services=("x",) * 500
    ))
    assert len(event["incident"]["title"]) <= 200
    assert len(event["summary"]) <= 500 and event["summary"].endswith("…")
    assert len(event["detail"]) <= 4000
    assert len(event["incident"]["services"]) == 50


# --- Slack --------------------------------------------------------------------------


def test_slack_message_for_a_severity_change() -> None:
    message = render_slack(severity_notice())
    assert message["text"] == "🟠 SEV2 INC-3: INC-3 raised from SEV3 to SEV2 by alice"
    header, summary, fields, detail, context = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "🟠 SEV2 · INC-3 · Checkout errors"}}
    assert summary["text"] == {
        "type": "mrkdwn", "text": "*Severity changed:* INC-3 raised from SEV3 to SEV2 by alice"
    }
    assert [field["text"] for field in fields["fields"]] == [
        "*Status*\ninvestigating", "*Services*\ncheckout, payments", "*Environment*\nproduction"
    ]
    assert detail["text"]["text"] == "error_rate &gt; 5% for 5m\nerror_rate 7.1% at 09:26"
    assert [e["text"] for e in context["elements"]] == [
        "by alice",
        "<!date^1773480413^{date_short_pretty} {time_secs}|2026-03-14T09:26:53.589Z>",
    ]
    assert_within_slack_limits(message)


def test_slack_message_for_an_automatic_rollback_without_an_incident() -> None:
    message = render_slack(rollback_notice())
    header, summary, detail, context = message["blocks"]
    assert header["text"]["text"] == "⏪ Automatic rollback"
    assert summary["text"]["text"] == "Rolled back checkout at stage 10%: error_rate 7.1% &gt; 5% for 5m"
    assert detail["text"]["text"].startswith("criterion: error_rate &gt; 5% for 5m\nevidence:")
    assert context["elements"][0]["text"] == "by Conn"
    assert message["text"].startswith("⏪ Automatic rollback: Rolled back checkout")
    assert_within_slack_limits(message)


def test_a_rollback_that_opened_an_incident_heads_with_the_incident() -> None:
    message = render_slack(rollback_notice(incident="INC-4", severity="SEV2", title="checkout rolled back"))
    header, summary = message["blocks"][:2]
    assert header["text"]["text"] == "⏪ SEV2 · INC-4 · checkout rolled back"
    assert summary["text"]["text"].startswith("*Automatic rollback:* Rolled back checkout")
    assert message["text"].startswith("⏪ SEV2 INC-4: Rolled back checkout")


def test_a_huge_multiline_detail_is_bounded() -> None:
    detail = "\n".join(f"line {n} \x1b[2J" for n in range(1_000_000))
    event = render_json(rollback_notice(detail=detail))
    lines = event["detail"].splitlines()
    assert len(lines) == 41 and lines[0] == "line 0" and lines[-1] == "…"
    assert_within_slack_limits(render_slack(rollback_notice(detail=detail)))


@pytest.mark.parametrize(
    ("severity", "emoji"), [("SEV1", "🔴"), ("SEV2", "🟠"), ("SEV3", "🟡"), ("SEV4", "🔵"), ("P0", "⚪")]
)
def test_severity_has_its_emoji(severity: str, emoji: str) -> None:
    message = render_slack(severity_notice(type="incident.opened", severity=severity))
    assert message["blocks"][0]["text"]["text"].startswith(f"{emoji} {severity} · INC-3")


def test_a_title_cannot_ping_the_channel_or_inject_a_link() -> None:
    hostile = "<!channel> <!here|here> <@U123> <https://evil.example|click> & *bold* [bold]x[/bold]"
    message = render_slack(severity_notice(
        title=hostile, summary=hostile, detail=hostile, actor=hostile, status=hostile,
        services=(hostile,), environment=hostile,
    ))
    escaped = "&lt;!channel&gt; &lt;!here|here&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt; &amp; *bold* [bold]x[/bold]"
    texts = slack_texts(message)
    for text in texts:
        # The only '<' that survives is the date token Conn writes itself.
        assert text.replace("<!date^", "").count("<") == 0, text
    assert escaped in message["blocks"][0]["text"]["text"]
    assert escaped in message["blocks"][1]["text"]["text"]
    assert escaped in message["blocks"][3]["text"]["text"]
    assert any(escaped in text for text in texts if text.startswith("by "))


def test_slack_escape_handles_ampersand_first() -> None:
    assert slack_escape("a & b < c > d &amp;") == "a &amp; b &lt; c &gt; d &amp;amp;"


def test_slack_message_strips_ansi_and_osc_sequences() -> None:
    message = render_slack(severity_notice(
        title="\x1b]8;;http://evil.example/\x1b\\Checkout\x1b]8;;\x1b\\ \x1b[1;31mdown\x1b[0m",
        summary="\x1b]0;pwned\x07ok\x1b[2J",
        detail="a\x1bPq#0\x1b\\b\nc\x9b2Jd",
    ))
    assert message["blocks"][0]["text"]["text"] == "🟠 SEV2 · INC-3 · Checkout down"
    assert message["blocks"][1]["text"]["text"] == "*Severity changed:* ok"
    assert message["blocks"][3]["text"]["text"] == "ab\ncd"
    assert not any("\x1b" in text or "\x9b" in text for text in slack_texts(message))


def test_long_texts_are_cut_within_slack_limits_never_inside_an_entity() -> None:
    message = render_slack(severity_notice(
        title="&" * 500, summary="<" * 5000, detail=">" * 50_000, services=("&" * 300,) * 60,
        environment="x" * 5000,
    ))
    assert_within_slack_limits(message)
    header = message["blocks"][0]["text"]["text"]
    assert header.endswith("&amp;…")  # whole entities, then the ellipsis
    detail = message["blocks"][3]["text"]["text"]
    assert detail.endswith("&gt;…") and len(detail) <= SLACK_LIMITS["section"]


def test_astral_characters_count_double_for_slack() -> None:
    message = render_slack(severity_notice(title="🔥" * 200))
    header = message["blocks"][0]["text"]["text"]
    assert width(header) <= SLACK_LIMITS["header"] and header.endswith("…")


_TEXT = st.text(st.characters(codec="utf-8"), max_size=3000) | st.text(
    st.sampled_from(["&", "<", ">", "\x1b", "]", "\n", "🔥", "a", "\x9b", "\u202e"]), max_size=6000
)


@settings(max_examples=150, deadline=None)
@given(
    notice_type=st.sampled_from(NOTICE_TYPES),
    title=st.none() | _TEXT,
    summary=_TEXT,
    detail=_TEXT,
    actor=_TEXT,
    incident=st.none() | st.text(max_size=80),
    services=st.lists(_TEXT, max_size=80).map(tuple),
)
def test_any_notice_renders_within_slack_limits_with_nothing_unescaped(
    notice_type: str, title: str | None, summary: str, detail: str, actor: str,
    incident: str | None, services: tuple[str, ...],
) -> None:
    notice = Notice(
        key="k1", type=notice_type, summary=summary, time=WHEN,  # type: ignore[arg-type]
        incident=incident, title=title, severity="SEV1", services=services, actor=actor, detail=detail,
    )
    message = render_slack(notice)
    assert_within_slack_limits(message)
    for text in slack_texts(message):
        assert "\x1b" not in text and "\x9b" not in text
        assert text.replace("<!date^", "").count("<") == 0
        assert ">" not in text.replace("|2026-03-14T09:26:53.589Z>", "")
    json.dumps(message, ensure_ascii=False, allow_nan=False).encode("utf-8")
    json.dumps(render_json(notice), ensure_ascii=False, allow_nan=False).encode("utf-8")


# --- the notice ---------------------------------------------------------------------


def test_a_notice_refuses_an_unknown_type_or_an_unsendable_key() -> None:
    with pytest.raises(ValueError, match=r"'incident\.closed' is not a notice type \(one of incident\.opened, "):
        severity_notice(type="incident.closed")
    for key in ("", "has space", "é", "x" * 201, "line\nbreak"):
        with pytest.raises(ValueError, match="is not an idempotency key"):
            severity_notice(key=key)
    for when in (float("nan"), float("inf"), -1.0, 1e20):
        with pytest.raises(ValueError, match="is not a time"):
            severity_notice(time=when)


# --- config -------------------------------------------------------------------------


def config_errors(table: dict[str, Any]) -> tuple[ValidationError, list[str]]:
    with pytest.raises(ValidationError) as caught:
        NotifyConfig.model_validate(table)
    return caught.value, describe_validation_errors(caught.value, table)


def test_a_valid_table() -> None:
    config = NotifyConfig.model_validate(
        {"format": "slack", "url_secret": "slack_oncall", "timeout": "5s",
         "events": ["incident.opened", "rollout.rollback"]}
    )
    assert (config.format, config.url_secret, config.timeout) == ("slack", "slack_oncall", 5.0)
    assert wants(config, "incident.opened") and wants(config, "rollout.rollback")
    assert not wants(config, "incident.status") and not wants(config, "rollout.stage")
    every = NotifyConfig.model_validate({"format": "json", "url_secret": "pager_hook"})
    assert every.timeout == 10.0 and every.events is None
    assert all(wants(every, kind) for kind in NOTICE_TYPES)


def test_an_unknown_event_type_is_named_with_a_suggestion_and_the_valid_ones() -> None:
    _, lines = config_errors(
        {"format": "slack", "url_secret": "s", "events": ["incident.open", "rollout.stage", "deploy"]}
    )
    (line,) = lines
    assert line.startswith("events: ")
    assert "'incident.open' is not a notice type. Did you mean 'incident.opened'?" in line
    assert "'deploy' is not a notice type." in line
    assert line.endswith(
        "The types are: incident.opened, incident.acknowledged, incident.note, incident.severity, "
            "incident.status, incident.role, "
        "rollout.stage, rollout.rollback"
    )


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ("incident.opened", 'events is a list: events = ["incident.opened"]'),
        ([], "an empty list sends nothing; leave events out to send every type"),
        (["rollout.stage", "rollout.stage"], "a notice type is listed twice"),
    ],
)
def test_events_shape_errors(events: Any, message: str) -> None:
    _, lines = config_errors({"format": "json", "url_secret": "s", "events": events})
    assert len(lines) == 1 and message in lines[0]


def test_a_url_instead_of_url_secret_is_refused_without_echoing_it() -> None:
    error, lines = config_errors({"format": "slack", "url": HOOK})
    assert lines == [
        "url: a webhook URL is a credential and never goes in the config: store it with "
        '`conn secret set NAME` and write url_secret = "NAME" (the URL is not shown here)'
    ]
    assert "XXXX" not in str(error) and "hooks.slack.com" not in str(error)
    assert "XXXX" not in repr(error.errors())


def test_a_url_in_url_secret_is_refused_without_echoing_it_alongside_other_problems() -> None:
    error, lines = config_errors(
        {"format": "teams", "url_secret": HOOK, "events": ["incident.open"], "timeout": "0s"}
    )
    assert lines[0].startswith("url_secret: holds a URL; url_secret is the NAME of the secret")
    assert {line.split(":")[0] for line in lines} == {"url_secret", "format", "events", "timeout"}
    assert "XXXX" not in str(error) and "hooks.slack.com" not in str(error)
    assert "XXXX" not in "\n".join(lines)


def test_other_config_errors() -> None:
    _, lines = config_errors({"format": "slack", "url_secret": "s", "channel": "#ops", "timeout": "10 minutes"})
    assert "channel: unknown key." in lines[0] or "channel: unknown key." in lines[1]
    assert any(line.startswith('timeout: "10 minutes" is not a duration') for line in lines)
    _, lines = config_errors({"format": "slack", "url_secret": "s", "timeout": "5m"})
    assert lines == [
        'timeout: "5m": must be more than 0s and at most 2m '
        "(an attempt that slow is better abandoned and retried)"
    ]
    _, lines = config_errors({"url_secret": ""})
    assert "format: required key is missing" in lines
    assert any(line.startswith('url_secret: "": is not a secret name') for line in lines)
    config = NotifyConfig.model_validate({"format": "slack", "url_secret": "s"})
    with pytest.raises(ValidationError, match="frozen"):
        config.format = "json"  # type: ignore[misc]


# --- backoff ------------------------------------------------------------------------


def test_backoff_doubles_from_two_seconds_to_a_five_minute_cap() -> None:
    assert [backoff(n) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff(10_000) == BACKOFF_CAP


@given(attempt=st.integers(1, 10_000), jitter=st.floats(0, 1, exclude_max=True))
def test_jitter_only_ever_shortens_the_wait_by_at_most_a_fifth(attempt: int, jitter: float) -> None:
    plain = backoff(attempt)
    waited = backoff(attempt, jitter)
    assert plain * 0.8 <= waited <= plain <= BACKOFF_CAP
    assert backoff(attempt, jitter) == waited  # deterministic


@pytest.mark.parametrize(
    ("attempt", "jitter", "message"),
    [(0, 0.0, "count from 1"), (-1, 0.0, "count from 1"), (True, 0.0, "count from 1"),
     (1, 1.0, "not a fraction"), (1, -0.1, "not a fraction")],
)
def test_backoff_refuses_nonsense(attempt: int, jitter: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backoff(attempt, jitter)
