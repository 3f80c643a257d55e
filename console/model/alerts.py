"""Alertmanager's alerts as Conn reads them, and the rules that turn them into incidents.

Teams already route their alerts through Alertmanager; Conn polls its API v2
(:mod:`console.sources.alertmanager`) and opens or joins an incident for each
alert a rule matches. This module is the pure part of that:

* **Label matchers** in Alertmanager's own syntax (``service=~"check.*"``),
  so a rule reads exactly like a silence or an ``amtool`` filter and means
  the same thing: regular expressions are anchored at both ends, a missing
  label is the empty string, and a quoted value takes Alertmanager's escapes.
* **Alerts** parsed from ``GET /api/v2/alerts``. An occurrence of an alert is
  its fingerprint (a hash of its labels, stable across re-sends) plus its
  ``startsAt``: Alertmanager keeps ``startsAt`` while an alert keeps firing
  and gives it a new one when a resolved alert fires again, so the pair tells
  "still the same problem" from "the same problem, back".
* **Rules** (``[[sources.alertmanager.rules]]``): which alerts open an
  incident, at which severity, for which service, under which title.

Label values stay exact (a matcher compares them byte for byte); text meant
for a screen (:func:`alert_title`) goes through
:func:`~console.model.sanitize.clean_text`, since an alert's annotations are
written by whoever wrote the alerting rule, or by anyone who can post to
Alertmanager.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, field_validator

from console.model.incident_config import Severity
from console.model.rollout_config import SecretName, Strict
from console.model.sanitize import clean_text
from console.model.units import Duration

MatchOperator = Literal["=", "!=", "=~", "!~"]
"""Equal, not equal, matches the regex, does not match it (Alertmanager's four)."""
AlertState = Literal["active", "suppressed", "unprocessed"]
"""Alertmanager's ``status.state``: suppressed means silenced or inhibited."""

MATCHER_EXAMPLE = 'e.g. alertname="HighErrorRate", service=~"check.*", severity!~"info|none"'
TITLE_LIMIT = 200
"""The longest title :func:`alert_title` returns, ellipsis included."""

# Alertmanager's own rule for a matcher's label name (pkg/labels/parse.go).
_LABEL_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# Prometheus' rule for a label name, which is what an alert can carry.
_PROMETHEUS_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPERATORS: tuple[MatchOperator, ...] = ("=~", "!~", "!=", "=")  # longest first
_UNESCAPES = {"n": "\n", '"': '"', "\\": "\\"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FINGERPRINT = re.compile(r"^[0-9A-Za-z]{1,64}$")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
_STATES: tuple[AlertState, ...] = ("active", "suppressed", "unprocessed")


# --- matchers ----------------------------------------------------------------


@dataclass(frozen=True)
class Matcher:
    """One label matcher: ``name``, an operator and a value (a regex for ``=~``/``!~``).

    Regular expressions are anchored at both ends (``^(?:value)$``), as
    Alertmanager does: ``service=~"check"`` does not match ``checkout``.
    They run on Python's ``re`` with ASCII classes, so ``\\d``, ``\\w`` and
    ``\\s`` mean what they mean in Go's RE2. Lookarounds and backreferences
    are accepted here but refused by RE2: avoid them, so that a rule's
    matchers still work pasted into a silence.

    Raises:
        ValueError: the name is not a label name, the operator is not one of
            the four, or the regex does not compile.
    """

    name: str
    op: MatchOperator
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _LABEL_NAME.fullmatch(self.name):
            raise ValueError(f"{self.name!r} is not a label name (letters, digits, '_', ':', not starting with a digit)")
        if self.op not in _OPERATORS:
            raise ValueError(f"{self.op!r} is not a matcher operator (=, !=, =~ or !~)")
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value, re.ASCII)  # alone first, so an error's position is in the value
                regex = re.compile(f"(?:{self.value})", re.ASCII)
            except re.error as e:
                where = "" if e.pos is None else f" at position {e.pos}"
                raise ValueError(f"invalid regular expression {self.value!r}: {e.msg}{where}") from None
            object.__setattr__(self, "_regex", regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher; a missing label counts as ``""``."""
        actual = labels.get(self.name, "")
        if self._regex is not None:
            return (self._regex.fullmatch(actual) is not None) == (self.op == "=~")
        return (actual == self.value) == (self.op == "=")

    def __str__(self) -> str:
        """Alertmanager's spelling: the value always quoted, ``\\``, ``"`` and newlines escaped."""
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """One matcher as written in a rule, a silence or ``amtool``: ``env!="dev"``.

    The value may be quoted (``\\"``, ``\\\\`` and ``\\n`` are escapes, any
    other backslash is kept, so ``path=~"/api/\\d+"`` works) or bare, as
    Alertmanager also accepts (``env=prod``); spaces around the parts are
    ignored.

    Raises:
        ValueError: naming the column of the bad part and what was expected.
    """
    matcher, pos = _scan_matcher(text, 0, len(text), stops="")
    if pos < len(text):
        raise _problem(text, pos, f"unexpected {_show(text[pos:], 20)} after the value")
    return matcher


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """A whole selector, ``{alertname="X", env!="dev"}`` (braces optional, trailing comma allowed).

    A bare value ends at the next comma or closing brace; quote a value that
    contains either. ``{}`` is no matchers at all (it matches every alert).

    Raises:
        ValueError: naming the column of the bad part and what was expected.
    """
    end = len(text.rstrip())
    pos = _skip_spaces(text, 0, end)
    if pos < end and text[pos] == "{":
        if text[end - 1] != "}":
            raise _problem(text, pos, "the selector opens '{' but does not end with '}'", "selector")
        pos, end = pos + 1, end - 1
    matchers: list[Matcher] = []
    while True:
        pos = _skip_spaces(text, pos, end)
        if pos >= end:
            return tuple(matchers)
        matcher, pos = _scan_matcher(text, pos, end, stops=",}", what="selector")
        matchers.append(matcher)
        pos = _skip_spaces(text, pos, end)
        if pos < end:
            if text[pos] != ",":
                raise _problem(text, pos, f"expected ',' between matchers, found {_show(text[pos:], 20)}", "selector")
            pos += 1


def _scan_matcher(text: str, pos: int, end: int, *, stops: str, what: str = "matcher") -> tuple[Matcher, int]:
    """Read one matcher from ``text[pos:end]``; returns it and the position after it."""
    pos = _skip_spaces(text, pos, end)
    name = _LABEL_NAME.match(text, pos, end)
    if name is None:
        found = f"found {_show(text[pos:end], 20)}" if pos < end else "found nothing"
        hint = " (write one matcher per list item, without braces)" if text.startswith("{", pos) else ""
        raise _problem(text, pos, f"expected a label name, {found}{hint}; {MATCHER_EXAMPLE}", what)
    pos = _skip_spaces(text, name.end(), end)
    op = next((o for o in _OPERATORS if text.startswith(o, pos, end)), None)
    if text.startswith("==", pos, end):
        raise _problem(text, pos, "'==' is not an operator: equality is a single '='", what)
    if op is None:
        found = _show(text[pos:end], 20) if pos < end else "nothing"
        raise _problem(
            text, pos, f"expected an operator (=, !=, =~ or !~) after {name.group()!r}, found {found}", what
        )
    value_at = pos = _skip_spaces(text, pos + len(op), end)
    if pos < end and text[pos] == '"':
        value, pos = _scan_quoted(text, pos, end, what)
    else:
        stop = next((i for i in range(pos, end) if text[i] in stops), end)
        value = text[pos:stop].strip()
        if '"' in value:
            raise _problem(text, pos, 'a bare value cannot hold \'"\'; quote the value and write \\" inside it', what)
        pos = stop
    try:
        return Matcher(name.group(), op, value), pos
    except ValueError as e:
        raise _problem(text, value_at, str(e), what) from None


def _scan_quoted(text: str, pos: int, end: int, what: str) -> tuple[str, int]:
    """A quoted value starting at ``text[pos] == '"'``, unescaped as Alertmanager does."""
    out: list[str] = []
    i = pos + 1
    while i < end:
        char = text[i]
        if char == "\\" and i + 1 < end:
            following = text[i + 1]
            out.append(_UNESCAPES.get(following, "\\" + following))
            i += 2
        elif char == '"':
            return "".join(out), _skip_spaces(text, i + 1, end)
        else:
            out.append(char)
            i += 1
    raise _problem(text, pos, 'the quoted value is never closed (a \'"\' inside a value is written \\")', what)


def _skip_spaces(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _problem(text: str, pos: int, problem: str, what: str = "matcher") -> ValueError:
    return ValueError(f"bad {what} {_show(text, 120)} at column {pos + 1}: {problem}")


def _show(value: object, limit: int = 60) -> str:
    """A value from outside, quoted for an error message: one line, bounded."""
    return clean_text(repr(value), limit=limit)


# --- alerts ------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager's API v2 lists it (a ``gettableAlert``).

    Label and annotation values are exact, as received: clean them
    (:func:`~console.model.sanitize.clean_text`) before showing them, or use
    :func:`alert_title`. ``labels`` and ``annotations`` are left out of the
    hash (dicts cannot be hashed) but not out of equality; do not mutate them.
    """

    fingerprint: str
    """Alertmanager's hash of the labels: the same alert keeps it across re-sends."""
    starts_at: float
    """When this occurrence began firing, seconds since the epoch."""
    ends_at: float | None
    """When it resolves unless re-sent (Alertmanager fills this in for firing alerts too)."""
    labels: dict[str, str] = field(hash=False)
    annotations: dict[str, str] = field(hash=False)
    state: AlertState = "active"
    """``active``, ``suppressed`` (silenced or inhibited) or ``unprocessed`` (not yet routed)."""
    generator_url: str | None = None
    """The http(s) link back to the alerting rule's source; anything else is dropped."""
    receivers: tuple[str, ...] = ()
    """The names of the receivers the alert is routed to."""
    silenced_by: tuple[str, ...] = ()
    """Ids of the silences muting it."""
    inhibited_by: tuple[str, ...] = ()
    """Fingerprints of the alerts inhibiting it."""
    updated_at: float | None = None
    """When Alertmanager last received it."""

    @property
    def occurrence(self) -> tuple[str, float]:
        """``(fingerprint, starts_at)``: one firing of one alert; a re-fire after resolving is a new one."""
        return (self.fingerprint, self.starts_at)

    @property
    def name(self) -> str:
        """The ``alertname`` label, exact ("" when the alert has none)."""
        return self.labels.get("alertname", "")


def parse_alerts(data: Any) -> list[Alert]:
    """The alerts in a decoded ``GET /api/v2/alerts`` answer (a JSON list of gettableAlert).

    Missing optional parts (annotations, receivers, generatorURL, endsAt,
    updatedAt, silencedBy, inhibitedBy) are tolerated; a zero time
    (``0001-01-01T00:00:00Z``, Go's "unset") counts as missing.

    Raises:
        ValueError: the answer is not a list, or an alert lacks a fingerprint,
            labels, a valid ``startsAt`` or a known ``status.state``; the
            message says which alert and what was wrong.
    """
    if not isinstance(data, list):
        raise ValueError(f"expected a list of alerts, got {_kind(data)}")
    return [_parse_alert(index, item) for index, item in enumerate(data)]


def _parse_alert(index: int, item: Any) -> Alert:
    where = f"alert {index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where} is {_kind(item)}, not an object")
    fingerprint = item.get("fingerprint")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.match(fingerprint):
        problem = "has no fingerprint" if fingerprint in (None, "") else f"has fingerprint {_show(fingerprint)}"
        raise ValueError(f"{where} {problem} (expected Alertmanager's hex hash of the labels)")
    where = f"alert {index} ({fingerprint})"
    if "labels" not in item:
        raise ValueError(f"{where} has no labels")
    labels = _string_map(item["labels"], f"{where}: labels")
    annotations = _string_map(item.get("annotations") or {}, f"{where}: annotations")
    starts_at = _time(item.get("startsAt"), f"{where}: startsAt")
    if starts_at is None:
        raise ValueError(f"{where} has no startsAt")
    status = item.get("status")
    if not isinstance(status, dict):
        raise ValueError(f"{where} has no status object")
    state = status.get("state")
    if state not in _STATES:
        raise ValueError(f"{where}: status.state is {_show(state)}, expected one of {', '.join(_STATES)}")
    url = item.get("generatorURL")
    return Alert(
        fingerprint=fingerprint,
        starts_at=starts_at,
        ends_at=_time(item.get("endsAt"), f"{where}: endsAt"),
        labels=labels,
        annotations=annotations,
        state=state,
        generator_url=url if isinstance(url, str) and url.startswith(("http://", "https://")) else None,
        receivers=_receivers(item.get("receivers"), f"{where}: receivers"),
        silenced_by=_strings(status.get("silencedBy"), f"{where}: status.silencedBy"),
        inhibited_by=_strings(status.get("inhibitedBy"), f"{where}: status.inhibitedBy"),
        updated_at=_time(item.get("updatedAt"), f"{where}: updatedAt"),
    )


def parse_time(text: str) -> float:
    """Seconds since the epoch from an RFC 3339 time as Alertmanager writes it.

    ``2026-11-29T16:08:48.467Z``, ``2026-11-29T18:00:00.000+02:00`` (it keeps
    the offset it was sent), up to nanoseconds. The zone is required.

    Raises:
        ValueError: anything else, including impossible dates.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{_show(text)} is not an RFC 3339 time (like 2026-11-29T16:08:48.467Z)")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    try:
        if zone in ("Z", "z"):
            tz = UTC
        else:
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            tz = timezone(-offset if zone[0] == "-" else offset)
        moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError as e:
        raise ValueError(f"{_show(text)} is not a valid time: {e}") from None
    return moment.timestamp() + (float(fraction) if fraction else 0.0)


def _time(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where} is {_kind(value)}, not a time")
    try:
        seconds = parse_time(value)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return None if value.startswith("0001-01-01T00:00:00") else seconds


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is {_kind(value)}, not an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ValueError(f"{where}: {_show(key)} is {_kind(item)}, not a string")
    return dict(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where} is not a list of strings")
    return tuple(value)


def _receivers(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{where} is {_kind(value)}, not a list")
    names: list[str] = []
    for receiver in value:
        name = receiver.get("name") if isinstance(receiver, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"{where}: expected objects with a name, found {_show(receiver)}")
        names.append(name)
    return tuple(names)


_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _kind(value: Any) -> str:
    """What a JSON value is, in words: "an object", "a string", "null"."""
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


# --- config and rules --------------------------------------------------------


def _matcher_text(text: str) -> str:
    parse_matcher(text)
    return text


def _one_line(limit: int) -> Any:
    def check(text: str) -> str:
        if not text.strip() or len(text) > limit or _CONTROL.search(text):
            raise ValueError(f"must be one line of 1–{limit} characters")
        return text

    return AfterValidator(check)


def _label_name(text: str) -> str:
    if not _PROMETHEUS_LABEL.match(text):
        raise ValueError(f"{text!r} is not a label name (letters, digits, '_', not starting with a digit)")
    return text


MatcherText = Annotated[StrictStr, AfterValidator(_matcher_text)]
"""A matcher as written (``service=~"check.*"``), checked with :func:`parse_matcher`."""


class AlertRule(Strict):
    """``[[sources.alertmanager.rules]]``: which alerts open an incident, and how.

    ::

        [[sources.alertmanager.rules]]
        matchers = ['alertname="HighErrorRate"', 'env!="dev"']
        severity = "SEV2"
    """

    matchers: list[MatcherText]
    """All must match (Alertmanager syntax); to take every alert, say so: 'alertname=~".+"'."""
    severity: Severity = "SEV3"
    """The severity of the incident opened."""
    service: Annotated[StrictStr, _one_line(100)] | None = None
    """A fixed service for the incident; otherwise the ``service_label`` label's value."""
    service_label: Annotated[StrictStr, AfterValidator(_label_name)] = "service"
    """The label that names the service when ``service`` is not given."""
    title: Annotated[StrictStr, _one_line(TITLE_LIMIT)] | None = None
    """The incident's title; by default the alert's ``summary`` annotation, else its alertname."""

    @field_validator("matchers")
    @classmethod
    def _some(cls, matchers: list[str]) -> list[str]:
        if not matchers:
            raise ValueError(
                "a rule needs at least one matcher; to take every alert, write "
                "matchers = ['alertname=~\".+\"']"
            )
        return matchers

    @cached_property
    def selector(self) -> tuple[Matcher, ...]:
        """The parsed ``matchers``."""
        return tuple(parse_matcher(text) for text in self.matchers)

    def matches(self, alert: Alert) -> bool:
        """Whether every matcher matches the alert's labels."""
        return all(matcher.matches(alert.labels) for matcher in self.selector)


class AlertmanagerConfig(Strict):
    """``[sources.alertmanager]``: where Conn polls for alerts, and the rules it applies."""

    url: StrictStr
    """Base URL, with any route prefix: "http://alertmanager:9093"."""
    interval: Annotated[Duration, Field(gt=0)] = 15.0
    """Time between polls."""
    timeout: Annotated[Duration, Field(gt=0)] = 5.0
    """How long one poll may take, from connecting to the last byte."""
    rules: list[AlertRule] = Field(default_factory=list)
    """Checked in order; the first whose matchers all match an alert applies to it."""
    token_secret: SecretName | None = None
    """Name of the secret holding a bearer token (never the token itself)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError(f"{_show(url)} is not a URL (e.g. http://alertmanager:9093)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{_show(url)} is not an http:// or https:// URL (e.g. http://alertmanager:9093)")
        if parts.username is not None or parts.password is not None:
            raise ValueError("put no credentials in the URL: name a secret in token_secret instead")
        if parts.query or parts.fragment:
            raise ValueError("the URL is Alertmanager's base (with any route prefix), without ?query or #fragment")
        return url


def match_rule(rules: Sequence[AlertRule], alert: Alert) -> AlertRule | None:
    """The first rule whose matchers all match ``alert``, or None when none does."""
    return next((rule for rule in rules if rule.matches(alert)), None)


def alert_service(rule: AlertRule | None, alert: Alert) -> str | None:
    """The service an alert is about: the rule's fixed ``service``, else its ``service_label``'s value.

    The label's value is returned exact, for looking the service up in the
    config; None when the label is missing or empty.
    """
    if rule is not None and rule.service is not None:
        return rule.service
    return alert.labels.get(rule.service_label if rule is not None else "service") or None


def alert_title(rule: AlertRule | None, alert: Alert) -> str:
    """A one-line title for the alert's incident, safe to show on a terminal.

    The rule's ``title``, else the ``summary`` annotation, else the
    alertname, else the fingerprint; cleaned and at most
    :data:`TITLE_LIMIT` characters.
    """
    for candidate in (
        rule.title if rule is not None else None,
        alert.annotations.get("summary"),
        alert.name,
    ):
        if candidate and (title := clean_text(candidate, limit=TITLE_LIMIT).strip()):
            return title
    return f"alert {alert.fingerprint}"


# --- what the dashboard's alerts strip shows ------------------------------------------

ALERTS_LIVE_ROW = "alerts/alertmanager"
"""The live-table row the leader writes after each poll, so every console shows the alerts."""


class FiringAlert(BaseModel):
    """One active alert as the alerts strip shows it (the leader's latest poll)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    title: str
    fingerprint: str
    starts_at: float
    service: str | None = None
    severity: str | None = None
    """The matching rule's severity; None when no rule matches (shown, opens nothing)."""
    incident: str | None = None


class AlertsLive(BaseModel):
    """The leader's latest poll of Alertmanager: the firing alerts, or why it could not tell."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    at: float
    alerts: tuple[FiringAlert, ...] = ()
    problem: str | None = None
