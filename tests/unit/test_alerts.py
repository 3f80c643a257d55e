"""Alertmanager matchers, alert parsing and rules: console.model.alerts, pure.

The API answers here are copied from a real Alertmanager 0.25
(``GET /api/v2/alerts`` after posting alerts to it), including the offset it
keeps on a time it was sent with one.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from console.model.alerts import (
    Alert,
    AlertmanagerConfig,
    AlertRule,
    Matcher,
    alert_service,
    alert_title,
    match_rule,
    parse_alerts,
    parse_matcher,
    parse_matchers,
    parse_time,
)

# --- matchers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('alertname="HighErrorRate"', {"alertname": "HighErrorRate"}, True),
        ('alertname="HighErrorRate"', {"alertname": "HighErrorRates"}, False),
        ('alertname="HighErrorRate"', {}, False),
        ('env!="dev"', {"env": "prod"}, True),
        ('env!="dev"', {"env": "dev"}, False),
        ('env!="dev"', {}, True),  # a missing label is "", which is not "dev"
        ('env=""', {}, True),
        ('service=~"check.*"', {"service": "checkout"}, True),
        ('service=~"check.*"', {"service": "precheckout"}, False),  # anchored at the start
        ('service=~"check"', {"service": "checkout"}, False),  # and at the end
        ('service=~"a|checkout"', {"service": "checkout"}, True),  # alternation inside the anchors
        ('service=~"a|check"', {"service": "checkout"}, False),
        ('severity!~"info|none"', {"severity": "critical"}, True),
        ('severity!~"info|none"', {"severity": "info"}, False),
        ('severity!~"info|none"', {"severity": "information"}, True),
        ('severity!~"info|none"', {}, True),
        ('severity=~".*"', {}, True),  # matches the empty string of a missing label
        ('severity=~".+"', {}, False),
        (r'path=~"/api/\d+"', {"path": "/api/42"}, True),  # \d is kept: a spurious escape
        (r'path=~"/api/\d+"', {"path": "/api/٤٢"}, False),  # and means ASCII digits, as in RE2
    ],
)
def test_matcher_operators(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_matcher_parts_and_spacing() -> None:
    assert parse_matcher('  service =~ "check.*"  ') == Matcher("service", "=~", "check.*")
    assert parse_matcher("env=prod") == Matcher("env", "=", "prod")  # bare, as Alertmanager allows
    assert parse_matcher("env != dev ") == Matcher("env", "!=", "dev")
    assert parse_matcher("env=") == Matcher("env", "=", "")
    assert parse_matcher("job:name=x").name == "job:name"  # Alertmanager's name rule allows ':'


def test_quoted_value_escapes_like_alertmanager() -> None:
    assert parse_matcher(r'msg="say \"hi\""').value == 'say "hi"'
    assert parse_matcher(r'msg="back\\slash"').value == "back\\slash"
    assert parse_matcher(r'msg="two\nlines"').value == "two\nlines"
    assert parse_matcher(r'msg="kept \d \x"').value == r"kept \d \x"
    assert parse_matcher('msg="a, b } c"').value == "a, b } c"
    matcher = parse_matcher(r'msg="say \"hi\""')
    assert matcher.matches({"msg": 'say "hi"'})


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("", 1, "expected a label name, found nothing"),
        ('="x"', 1, "expected a label name"),
        ('1abc="x"', 1, "expected a label name"),
        ('{a="b"}', 1, "one matcher per list item"),
        ("alertname", 10, "expected an operator (=, !=, =~ or !~) after 'alertname', found nothing"),
        ('alertname~"x"', 10, "expected an operator"),
        ('alertname=="x"', 10, "'==' is not an operator"),
        ('alertname="x', 11, "never closed"),
        (r'alertname="x\"', 11, "never closed"),
        ('alertname="x" y', 15, "unexpected 'y' after the value"),
        ('alertname=x"y', 11, "a bare value cannot hold"),
        ('service=~"check("', 10, "invalid regular expression 'check(': missing ), unterminated subpattern at position 5"),
        ('service!~"*"', 10, "nothing to repeat at position 0"),
    ],
)
def test_bad_matchers_point_at_the_bad_part(text: str, column: int, words: str) -> None:
    with pytest.raises(ValueError, match=r"^bad matcher") as caught:
        parse_matcher(text)
    message = str(caught.value)
    assert f"at column {column}:" in message
    assert words in message
    assert repr(text) in message


def test_bad_matcher_message_is_one_clean_line() -> None:
    with pytest.raises(ValueError, match="bad matcher") as caught:
        parse_matcher("\x1b[2J\x1b]8;;http://evil\x07x" * 30)
    message = str(caught.value)
    assert "\x1b" not in message
    assert len(message) < 400


def test_matcher_constructed_directly_is_checked() -> None:
    with pytest.raises(ValueError, match="not a label name"):
        Matcher("bad name", "=", "x")
    with pytest.raises(ValueError, match="not a matcher operator"):
        Matcher("a", "==", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid regular expression"):
        Matcher("a", "!~", "(")


def test_str_is_alertmanagers_spelling() -> None:
    assert str(parse_matcher("env=prod")) == 'env="prod"'
    assert str(parse_matcher(r'msg="a\"b\\c\nd"')) == r'msg="a\"b\\c\nd"'
    assert str(Matcher("path", "=~", r"/api/\d+")) == r'path=~"/api/\\d+"'


_names = st.from_regex(re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,10}"), fullmatch=True)


@given(name=_names, op=st.sampled_from(["=", "!="]), value=st.text(max_size=30))
def test_round_trip_any_value(name: str, op: Any, value: str) -> None:
    matcher = Matcher(name, op, value)
    assert parse_matcher(str(matcher)) == matcher
    assert parse_matchers("{" + str(matcher) + "}") == (matcher,)


@given(name=_names, literal=st.text(max_size=20), label=st.text(max_size=20))
def test_escaped_regex_is_equality(name: str, literal: str, label: str) -> None:
    """``=~`` of an escaped literal means ``=``, anchoring included; ``!~`` is its negation."""
    regex = Matcher(name, "=~", re.escape(literal))
    assert parse_matcher(str(regex)) == regex
    for labels in ({name: label}, {name: literal}, {}):
        assert regex.matches(labels) is Matcher(name, "=", literal).matches(labels)
        assert Matcher(name, "!~", re.escape(literal)).matches(labels) is not regex.matches(labels)


def test_selector_parses_into_matchers() -> None:
    assert parse_matchers('{alertname="HighErrorRate", service=~"check.*"}') == (
        Matcher("alertname", "=", "HighErrorRate"),
        Matcher("service", "=~", "check.*"),
    )
    assert parse_matchers('  a="b",c!=d,  ') == (Matcher("a", "=", "b"), Matcher("c", "!=", "d"))
    assert parse_matchers('{a="x,y}", b=bare}') == (Matcher("a", "=", "x,y}"), Matcher("b", "=", "bare"))
    assert parse_matchers("{}") == ()
    assert parse_matchers("") == ()


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ('{a="b"', 1, "opens '{' but does not end with '}'"),
        ('{a="b" c="d"}', 8, "expected ',' between matchers"),
        ('{a="b",,c="d"}', 8, "expected a label name"),
        ('{a="b", c=~"("}', 12, "invalid regular expression"),
    ],
)
def test_bad_selectors(text: str, column: int, words: str) -> None:
    with pytest.raises(ValueError, match=r"^bad selector") as caught:
        parse_matchers(text)
    assert f"at column {column}:" in str(caught.value)
    assert words in str(caught.value)


# --- alerts ------------------------------------------------------------------

ANSWER: list[dict[str, Any]] = [
    {
        "annotations": {"summary": "Checkout 5xx above 2%"},
        "endsAt": "2026-11-29T16:13:48.467Z",
        "fingerprint": "6e890fd1d2e6636f",
        "receivers": [{"name": "null"}],
        "startsAt": "2026-11-29T16:08:48.467Z",
        "status": {"inhibitedBy": [], "silencedBy": [], "state": "active"},
        "updatedAt": "2026-11-29T16:08:48.467Z",
        "generatorURL": "http://prom/graph?g0.expr=x",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"},
    },
    {
        "annotations": {},
        "endsAt": "2026-11-29T16:13:54.960Z",
        "fingerprint": "55eca4819d569468",
        "receivers": [{"name": "null"}],
        "startsAt": "2026-11-29T18:00:00.000+02:00",
        "status": {
            "inhibitedBy": [],
            "silencedBy": ["9476f40e-7fa8-4730-a81a-39b96006308c"],
            "state": "suppressed",
        },
        "updatedAt": "2026-11-29T16:08:54.960Z",
        "labels": {"alertname": "Offset", "service": "x"},
    },
]


def _epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_parse_alerts_from_a_real_answer() -> None:
    first, second = parse_alerts(ANSWER)
    assert first == Alert(
        fingerprint="6e890fd1d2e6636f",
        starts_at=_epoch(2026, 11, 29, 16, 8, 48) + 0.467,
        ends_at=_epoch(2026, 11, 29, 16, 13, 48) + 0.467,
        labels={"alertname": "HighErrorRate", "service": "checkout", "severity": "page"},
        annotations={"summary": "Checkout 5xx above 2%"},
        state="active",
        generator_url="http://prom/graph?g0.expr=x",
        receivers=("null",),
        updated_at=_epoch(2026, 11, 29, 16, 8, 48) + 0.467,
    )
    assert first.occurrence == ("6e890fd1d2e6636f", first.starts_at)
    assert first.name == "HighErrorRate"
    assert second.starts_at == _epoch(2026, 11, 29, 16, 0, 0)  # 18:00 at +02:00
    assert second.state == "suppressed"
    assert second.silenced_by == ("9476f40e-7fa8-4730-a81a-39b96006308c",)
    assert second.generator_url is None
    assert len({first, second}) == 2  # hashable, for sets of seen alerts


def test_occurrence_tells_a_refire_from_the_same_firing() -> None:
    again = copy.deepcopy(ANSWER[0])
    again["updatedAt"] = "2026-11-29T16:09:48.467Z"
    refired = copy.deepcopy(ANSWER[0])
    refired["startsAt"] = "2026-11-29T17:00:00.000Z"
    first, same, new = parse_alerts([ANSWER[0], again, refired])
    assert first.occurrence == same.occurrence
    assert first.occurrence != new.occurrence
    assert first.fingerprint == new.fingerprint


def test_optional_parts_may_be_missing() -> None:
    (alert,) = parse_alerts(
        [{"fingerprint": "abc", "labels": {}, "startsAt": "2026-11-29T16:00:00Z", "status": {"state": "unprocessed"},
          "endsAt": "0001-01-01T00:00:00.000Z", "generatorURL": "javascript:alert(1)"}]
    )
    assert alert.ends_at is None  # Go's zero time
    assert alert.annotations == {} and alert.receivers == () and alert.updated_at is None
    assert alert.generator_url is None  # only http(s) links are kept
    assert alert.state == "unprocessed"


def test_label_values_stay_exact() -> None:
    answer = copy.deepcopy(ANSWER[:1])
    answer[0]["labels"]["service"] = "check\x1b[31mout"
    (alert,) = parse_alerts(answer)
    assert alert.labels["service"] == "check\x1b[31mout"
    assert parse_matcher('service="check\x1b[31mout"').matches(alert.labels)


def test_times_with_nanoseconds_and_offsets() -> None:
    assert parse_time("2026-11-29T16:00:00.123456789Z") == pytest.approx(_epoch(2026, 11, 29, 16) + 0.123456789)
    assert parse_time("2026-11-29T10:30:00-05:30") == _epoch(2026, 11, 29, 16, 0)
    for bad in ("2026-11-29", "2026-11-29T16:00:00", "2026-13-01T00:00:00Z", "2026-11-29T16:00:00+25:00",
                "yesterday", "2026-11-29T16:00:00.Z"):
        with pytest.raises(ValueError, match="time"):
            parse_time(bad)


def _with(**changes: Any) -> list[dict[str, Any]]:
    item = copy.deepcopy(ANSWER[0])
    for key, value in changes.items():
        if value is ...:
            del item[key]
        else:
            item[key] = value
    return [copy.deepcopy(ANSWER[1]), item]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"status": "success", "data": []}, "expected a list of alerts, got an object"),
        (None, "expected a list of alerts, got null"),
        ("alerts", "expected a list of alerts, got a string"),
        ([1], "alert 0 is a number, not an object"),
        (_with(fingerprint=...), "alert 1 has no fingerprint"),
        (_with(fingerprint=""), "alert 1 has no fingerprint"),
        (_with(fingerprint="../../etc"), "alert 1 has fingerprint '../../etc'"),
        (_with(labels=...), "alert 1 (6e890fd1d2e6636f) has no labels"),
        (_with(labels=["a"]), "labels is a list, not an object of strings"),
        (_with(labels={"a": 1}), "labels: 'a' is a number, not a string"),
        (_with(annotations={"summary": None}), "annotations: 'summary' is null, not a string"),
        (_with(startsAt=...), "(6e890fd1d2e6636f) has no startsAt"),
        (_with(startsAt="2026-11-29 16:08"), "startsAt: '2026-11-29 16:08' is not an RFC 3339 time"),
        (_with(startsAt=1764432528), "startsAt is a number, not a time"),
        (_with(endsAt="soon"), "endsAt: 'soon' is not an RFC 3339 time"),
        (_with(status=...), "has no status object"),
        (_with(status={"state": "firing"}), "status.state is 'firing', expected one of active, suppressed, unprocessed"),
        (_with(status={"state": "active", "silencedBy": [1]}), "status.silencedBy is not a list of strings"),
        (_with(receivers="null"), "receivers is a string, not a list"),
        (_with(receivers=[{"id": 1}]), "receivers: expected objects with a name"),
    ],
)
def test_garbage_is_a_value_error_saying_what(data: Any, words: str) -> None:
    with pytest.raises(ValueError, match="alert") as caught:
        parse_alerts(data)
    assert words in str(caught.value)


def test_garbage_messages_are_clean() -> None:
    with pytest.raises(ValueError, match="fingerprint") as caught:
        parse_alerts(_with(fingerprint="\x1b]8;;http://x\x07" + "z" * 500))
    assert "\x1b" not in str(caught.value) and len(str(caught.value)) < 200


# --- rules -------------------------------------------------------------------

CHECKOUT = Alert(
    fingerprint="f1", starts_at=1.0, ends_at=None,
    labels={"alertname": "HighErrorRate", "service": "checkout", "env": "prod", "team": "pay"},
    annotations={"summary": "Checkout 5xx above 2%"},
)


def test_first_matching_rule_wins() -> None:
    dev = AlertRule(matchers=['env="dev"'], severity="SEV4")
    errors = AlertRule(matchers=['alertname="HighErrorRate"', 'env!="dev"'], severity="SEV2")
    anything = AlertRule(matchers=['alertname=~".+"'])
    assert match_rule([dev, errors, anything], CHECKOUT) is errors
    assert match_rule([anything, errors], CHECKOUT) is anything
    assert match_rule([dev], CHECKOUT) is None
    assert match_rule([], CHECKOUT) is None
    assert errors.selector == (Matcher("alertname", "=", "HighErrorRate"), Matcher("env", "!=", "dev"))
    assert errors.matches(CHECKOUT) and not dev.matches(CHECKOUT)


def test_service_from_rule_or_label() -> None:
    assert alert_service(AlertRule(matchers=["a=b"]), CHECKOUT) == "checkout"
    assert alert_service(AlertRule(matchers=["a=b"], service="payments"), CHECKOUT) == "payments"
    assert alert_service(AlertRule(matchers=["a=b"], service_label="team"), CHECKOUT) == "pay"
    assert alert_service(AlertRule(matchers=["a=b"], service_label="job"), CHECKOUT) is None
    assert alert_service(None, CHECKOUT) == "checkout"
    empty = Alert("f2", 1.0, None, labels={"service": ""}, annotations={})
    assert alert_service(None, empty) is None


def test_title_from_rule_summary_alertname_fingerprint() -> None:
    rule = AlertRule(matchers=["a=b"])
    assert alert_title(AlertRule(matchers=["a=b"], title="Checkout errors"), CHECKOUT) == "Checkout errors"
    assert alert_title(rule, CHECKOUT) == "Checkout 5xx above 2%"
    no_summary = Alert("f3", 1.0, None, labels={"alertname": "HighErrorRate"}, annotations={})
    assert alert_title(rule, no_summary) == "HighErrorRate"
    assert alert_title(None, Alert("f4", 1.0, None, labels={}, annotations={})) == "alert f4"


def test_title_is_cleaned_and_bounded() -> None:
    hostile = Alert(
        "f5", 1.0, None, labels={"alertname": "X"},
        annotations={"summary": "\x1b[2J\x1b]8;;http://evil\x07click\x1b]8;;\x07 me\nnow " + "y" * 500},
    )
    title = alert_title(None, hostile)
    assert title.startswith("click me now y")
    assert "\x1b" not in title and "\n" not in title
    assert len(title) == 200 and title.endswith("…")
    blank = Alert("f6", 1.0, None, labels={"alertname": "Named"}, annotations={"summary": "\x1b[0m  "})
    assert alert_title(None, blank) == "Named"


# --- config ------------------------------------------------------------------


def _errors(error: ValidationError) -> dict[str, str]:
    return {".".join(str(part) for part in e["loc"]): e["msg"] for e in error.errors()}


def test_config_defaults_and_durations() -> None:
    config = AlertmanagerConfig.model_validate(
        {"url": "http://alertmanager:9093/", "interval": "30s", "timeout": "2s", "token_secret": "am_token",
         "rules": [{"matchers": ['alertname="HighErrorRate"'], "severity": "SEV2"}]}
    )
    assert (config.interval, config.timeout) == (30.0, 2.0)
    assert config.rules[0].severity == "SEV2" and config.rules[0].service_label == "service"
    defaults = AlertmanagerConfig(url="https://am.example/prefix")
    assert (defaults.interval, defaults.timeout, defaults.rules, defaults.token_secret) == (15.0, 5.0, [], None)


def test_bad_matcher_is_reported_at_its_index() -> None:
    with pytest.raises(ValidationError) as caught:
        AlertRule.model_validate({"matchers": ['alertname="X"', 'service=~"check("', "env"]})
    errors = _errors(caught.value)
    assert set(errors) == {"matchers.1", "matchers.2"}
    assert "invalid regular expression 'check('" in errors["matchers.1"]
    assert "expected an operator" in errors["matchers.2"]


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        ({"matchers": []}, "matchers", "at least one matcher"),
        ({"matchers": 'alertname="X"'}, "matchers", "list"),
        ({"matchers": ["a=b"], "severity": "SEV5"}, "severity", "SEV1"),
        ({"matchers": ["a=b"], "service_label": "1bad"}, "service_label", "not a label name"),
        ({"matchers": ["a=b"], "service": ""}, "service", "one line"),
        ({"matchers": ["a=b"], "title": "two\nlines"}, "title", "one line"),
        ({"matchers": ["a=b"], "sevrity": "SEV1"}, "sevrity", "Extra inputs"),
    ],
)
def test_rule_errors(data: dict[str, Any], where: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AlertRule.model_validate(data)
    errors = _errors(caught.value)
    assert where in errors
    assert words in errors[where]


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        ({"url": "ftp://am:9093"}, "url", "not an http:// or https:// URL"),
        ({"url": "am:9093"}, "url", "not an http:// or https:// URL"),
        ({"url": "http://"}, "url", "not an http:// or https:// URL"),
        ({"url": "http://am:port"}, "url", "is not a URL"),
        ({"url": "http://admin:hunter2@am:9093"}, "url", "no credentials in the URL"),
        ({"url": "http://am:9093/api/v2/alerts?active=true"}, "url", "without ?query"),
        ({"url": "http://am:9093", "interval": "soon"}, "interval", "not a duration"),
        ({"url": "http://am:9093", "timeout": 0}, "timeout", "greater than 0"),
        ({"url": "http://am:9093", "token_secret": ""}, "token_secret", "secret name"),
        ({"url": "http://am:9093", "rules": [{"matchers": ["a"]}]}, "rules.0.matchers.0", "bad matcher"),
        ({"url": "http://am:9093", "rules": [{"matchers": ['a=~"("']}]}, "rules.0.matchers.0", "invalid regular"),
        ({"url": "http://am:9093", "auth": "bearer"}, "auth", "Extra inputs"),
    ],
)
def test_config_errors(data: dict[str, Any], where: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AlertmanagerConfig.model_validate(data)
    errors = _errors(caught.value)
    assert where in errors, errors
    assert words in errors[where]


def test_config_is_frozen() -> None:
    config = AlertmanagerConfig(url="http://am:9093")
    with pytest.raises(ValidationError):
        config.url = "http://elsewhere:9093"  # type: ignore[misc]
