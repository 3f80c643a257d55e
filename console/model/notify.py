"""Chat-out notifications: the ``[notify.NAME]`` config, the notice, and how it reads.

The leader turns incident and rollout events into :class:`Notice` values and
an outbox delivers each one to every ``[notify.NAME]`` target that
:func:`wants` it, retrying after :func:`backoff`. This module is the pure
half: what a notice says and how it is spelt for each format; the POST is
:mod:`console.actions.notify`'s.

    [notify.oncall]
    format = "slack"                # a Slack incoming webhook
    url_secret = "slack_oncall"     # the NAME of the secret holding the URL
    events = ["incident.opened", "incident.severity", "rollout.rollback"]

    [notify.pager]
    format = "json"                 # the generic event below, for anything else
    url_secret = "pager_hook"
    timeout = "5s"

A webhook URL is a credential (whoever holds a Slack incoming-webhook URL can
post to the channel), so the config only ever names the secret that holds it:
a ``url`` key is refused, and so is a ``url_secret`` that holds a URL, without
the URL being echoed in the error.

The generic JSON event (``format = "json"``) is a contract; receivers parse
it, so fields are added, never renamed or removed::

    {
      "type": "incident.severity",         # one of NOTICE_TYPES
      "idempotency_key": "4711",           # the same on every retry, from every leader
      "time": "2026-03-14T09:26:53.589Z",  # RFC 3339, UTC, milliseconds
      "environment": "production",         # "" when not configured
      "incident": {                        # null for a notice about no incident
        "id": "INC-3",                     # null when unknown (same for the four below)
        "title": "Checkout errors",
        "severity": "SEV2",
        "status": "investigating",
        "services": ["checkout", "payments"]
      },
      "services": ["checkout", "payments"],  # the services concerned (also without an incident)
      "summary": "INC-3 raised from SEV3 to SEV2 by alice",  # one line
      "actor": "alice",                    # "" for the system
      "detail": "error_rate > 5% for 5m\\nerror_rate 7.1% at 09:26"  # may span lines
    }

The same ``idempotency_key`` also travels as the ``Idempotency-Key`` header
and ``type`` as ``X-Conn-Event``, so a receiver can drop a duplicate (an
outbox delivers at least once) without parsing the body.

Every string that came from outside (a title, a command's output in a detail)
is cleaned with :func:`console.model.sanitize.clean_text` in both formats: no
escape sequences or control characters reach a receiver's terminal or log.
Slack additionally gets ``&``, ``<`` and ``>`` escaped everywhere, because in
Slack's text ``<!channel>`` pings everyone and ``<https://x|y>`` is a link:
a title cannot do either. Rich markup (``[bold]``) and Slack's own
``*bold*`` stay as the characters they are. Redacting secrets is the
caller's job (:mod:`console.actions.notify` does it before rendering), since
this layer cannot see the secret registry.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from console.model.rollout_config import SecretName
from console.model.sanitize import ELLIPSIS, clean_text
from console.model.text import suggest
from console.model.units import Duration, format_duration

__all__ = [
    "BACKOFF_CAP",
    "BACKOFF_FIRST",
    "NOTICE_TYPES",
    "SLACK_LIMITS",
    "Notice",
    "NoticeType",
    "NotifyConfig",
    "NotifyFormat",
    "backoff",
    "render_json",
    "render_slack",
    "slack_escape",
    "wants",
]

NoticeType = Literal[
    "incident.opened",
    "incident.acknowledged",
    "incident.note",
    "incident.severity",
    "incident.status",
    "incident.role",
    "rollout.stage",
    "rollout.rollback",
]
NOTICE_TYPES: tuple[NoticeType, ...] = get_args(NoticeType)
"""Every notice type, in the order they are documented."""

NotifyFormat = Literal["slack", "json"]
"""``slack``: a Slack incoming-webhook message; ``json``: the generic event above."""

MAX_NOTIFY_TIMEOUT = 120.0
"""A notification that takes longer than two minutes to accept is better retried."""

_LABELS: dict[NoticeType, str] = {
    "incident.opened": "Incident opened",
    "incident.acknowledged": "Acknowledged",
    "incident.note": "Update",
    "incident.severity": "Severity changed",
    "incident.status": "Status changed",
    "incident.role": "Role handoff",
    "rollout.stage": "Rollout stage",
    "rollout.rollback": "Automatic rollback",
}
_YEAR_10000 = 253402300800.0
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
"""Printable ASCII without spaces: it travels as an HTTP header value."""


# --- config ------------------------------------------------------------------



def _notify_timeout(seconds: float) -> float:
    if not 0 < seconds <= MAX_NOTIFY_TIMEOUT:
        raise ValueError(
            f"must be more than 0s and at most {format_duration(MAX_NOTIFY_TIMEOUT)} "
            "(an attempt that slow is better abandoned and retried)"
        )
    return seconds


NotifyTimeout = Annotated[Duration, AfterValidator(_notify_timeout)]


class NotifyConfig(BaseModel):
    """One ``[notify.NAME]`` table: where notices go and which ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    format: NotifyFormat
    """"slack" for a Slack incoming webhook, "json" for the generic event."""
    url_secret: SecretName
    """The name of the secret that holds the webhook URL (``conn secret set NAME``)."""
    timeout: NotifyTimeout = 10.0
    """One delivery attempt is abandoned (and retried later) past this."""
    events: list[NoticeType] | None = None
    """The notice types sent here; left out, every type."""

    @field_validator("events", mode="before")
    @classmethod
    def _event_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f"events is a list: events = [{json.dumps(value)}]")
        if not isinstance(value, list):
            return value  # pydantic words the wrong shape
        if not value:
            raise ValueError("an empty list sends nothing; leave events out to send every type")
        problems = []
        for item in value:
            if isinstance(item, str) and item not in NOTICE_TYPES:
                problems.append(f"{item!r} is not a notice type.{suggest(item, NOTICE_TYPES)}")
        if problems:
            raise ValueError(" ".join(problems) + f" The types are: {', '.join(NOTICE_TYPES)}")
        if len(set(map(str, value))) != len(value):
            raise ValueError("a notice type is listed twice")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _no_url_in_config(
        cls, data: Any, handler: ModelWrapValidatorHandler[NotifyConfig]
    ) -> NotifyConfig:
        """Refuse a URL where a secret's name belongs, without ever echoing the URL.

        pydantic would quote the offending value (the credential) in its
        error; the value is taken out before the table is validated, and the
        problem reported on the table as it stands without it.
        """
        if not isinstance(data, Mapping):
            return handler(data)
        hidden = {key for key in ("url", "url_secret") if _looks_like_url(data, key)}
        if not hidden:
            return handler(data)
        rest = {key: value for key, value in data.items() if key not in hidden}
        problems: list[InitErrorDetails] = []
        if "url" in hidden:
            problems.append(_problem(("url",), rest, (
                "a webhook URL is a credential and never goes in the config: store it with "
                '`conn secret set NAME` and write url_secret = "NAME" (the URL is not shown here)'
            )))
        if "url_secret" in hidden:
            problems.append(_problem(("url_secret",), rest, (
                "holds a URL; url_secret is the NAME of the secret that holds it: store the URL "
                'with `conn secret set NAME` and write url_secret = "NAME" (the URL is not shown here)'
            )))
        try:
            handler(rest)
        except ValidationError as e:
            for error in e.errors(include_url=False):
                if error["type"] == "missing" and tuple(error["loc"]) == ("url_secret",):
                    continue  # already explained by the problem above
                message = error["msg"].removeprefix("Value error, ")
                problems.append(_problem(tuple(error["loc"]), error.get("input"), message, error["type"]))
        raise ValidationError.from_exception_data("notify", problems)


def _looks_like_url(data: Mapping[str, Any], key: str) -> bool:
    if key not in data:
        return False
    if key == "url":
        return True
    value = data[key]
    return isinstance(value, str) and ("://" in value or value.lower().startswith(("http:", "https:")))


def _problem(loc: tuple[Any, ...], value: Any, message: str, kind: str = "notify") -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError(kind, "{message}", {"message": message}), loc=loc, input=value
    )


def wants(config: NotifyConfig, notice_type: NoticeType | str) -> bool:
    """Whether the target configured by ``config`` is sent notices of ``notice_type``."""
    return config.events is None or notice_type in config.events


# --- the notice --------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One thing worth telling the channel, in operator words; the same for every target."""

    key: str
    """Idempotency key (an event id): stable across retries and leaders."""
    type: NoticeType
    summary: str
    """One line: "INC-3 raised from SEV3 to SEV2 by alice"."""
    time: float
    """When it happened (epoch seconds), not when it was sent."""
    incident: str | None = None
    """"INC-3"; None for a notice about no incident (a rollout stage)."""
    title: str | None = None
    severity: str | None = None
    """"SEV2"."""
    status: str | None = None
    """"investigating"."""
    services: tuple[str, ...] = ()
    actor: str = ""
    """Who did it; "" for Conn itself (an automatic rollback)."""
    detail: str = ""
    """More, possibly over several lines: a rollback's criterion and its evidence."""
    environment: str = ""

    def __post_init__(self) -> None:
        if self.type not in NOTICE_TYPES:
            raise ValueError(
                f"{self.type!r} is not a notice type (one of {', '.join(NOTICE_TYPES)})"
            )
        if not isinstance(self.key, str) or not _KEY.match(self.key):
            raise ValueError(
                f"{self.key!r} is not an idempotency key (1–200 printable ASCII characters, no spaces)"
            )
        if not (math.isfinite(self.time) and 0 <= self.time < _YEAR_10000):
            raise ValueError(f"{self.time!r} is not a time (epoch seconds)")


def rfc3339(seconds: float) -> str:
    """``2026-03-14T09:26:53.589Z``: UTC, milliseconds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _clean(text: str | None, limit: int) -> str:
    """One line of outside text, safe to send: no escapes, controls or lone surrogates."""
    if not text:
        return ""
    # A lone surrogate cannot be encoded as UTF-8 JSON; the whole delivery would fail.
    text = text.encode("utf-8", "replace").decode("utf-8")
    return clean_text(text, limit).strip()


_MAX_DETAIL_LINES = 40


def _clean_lines(text: str, limit: int) -> str:
    """Like :func:`_clean`, keeping line breaks (at most 40 lines, each cleaned)."""
    # Generous for escapes to strip, and a 10 MB command output costs a few KB of work.
    lines = [_clean(line, limit) for line in text[: limit * 8].splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) > _MAX_DETAIL_LINES:
        lines = [*lines[:_MAX_DETAIL_LINES], ELLIPSIS]
    joined = "\n".join(lines).strip("\n")
    return joined if len(joined) <= limit else joined[: limit - len(ELLIPSIS)] + ELLIPSIS


_SERVICES_MAX = 50


def _services(services: tuple[str, ...]) -> list[str]:
    return [name for name in (_clean(s, 100) for s in services[:_SERVICES_MAX]) if name]


# --- the generic JSON event --------------------------------------------------


def render_json(notice: Notice) -> dict[str, Any]:
    """The generic JSON event for ``notice`` (the contract in this module's docstring)."""
    incident: dict[str, Any] | None = None
    if notice.incident is not None or notice.title is not None:
        incident = {
            "id": _clean(notice.incident, 40) or None,
            "title": _clean(notice.title, 200) or None,
            "severity": _clean(notice.severity, 20) or None,
            "status": _clean(notice.status, 40) or None,
            "services": _services(notice.services),
        }
    return {
        "type": notice.type,
        "idempotency_key": notice.key,
        "time": rfc3339(notice.time),
        "environment": _clean(notice.environment, 100),
        "incident": incident,
        "services": _services(notice.services),
        "summary": _clean(notice.summary, 500),
        "actor": _clean(notice.actor, 100),
        "detail": _clean_lines(notice.detail, 4000),
    }


# --- Slack -------------------------------------------------------------------

SLACK_LIMITS: Mapping[str, int] = {
    "blocks": 50,
    "header": 150,
    "section": 3000,
    "field": 2000,
    "fields": 10,
    "context_elements": 10,
    "text": 3000,
}
"""Block Kit's limits (header text 150, section text 3000, a field 2000, ten
fields, ten context elements, 50 blocks), and the fallback ``text`` kept well
under the 4,000 characters Slack advises. Lengths are counted in UTF-16 code
units, which is never less than Slack's count, whichever it uses."""

_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SEVERITY_EMOJI = {"SEV1": "🔴", "SEV2": "🟠", "SEV3": "🟡", "SEV4": "🔵"}
_TYPE_EMOJI: dict[NoticeType, str] = {
    "incident.opened": "🚨",
    "incident.acknowledged": "👀",
    "incident.note": "💬",
    "incident.severity": "📈",
    "incident.status": "📝",
    "incident.role": "🤝",
    "rollout.stage": "🚦",
    "rollout.rollback": "⏪",
}
_FIELD_TEXT = 200
"""A field's value is a status, a severity or a few service names: short."""


def slack_escape(text: str) -> str:
    """``text`` with ``&``, ``<``, ``>`` as Slack's entities: shown, never obeyed."""
    return "".join(_SLACK_ESCAPES.get(char, char) for char in text)


def _width(piece: str) -> int:
    return len(piece.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> str:
    """``text`` escaped for Slack and cut (never inside an entity) to ``limit`` units."""
    escaped = slack_escape(text)
    if _width(escaped) <= limit:
        return escaped
    budget = limit - _width(ELLIPSIS)
    out: list[str] = []
    size = 0
    for char in text:
        piece = _SLACK_ESCAPES.get(char, char)
        size += _width(piece)
        if size > budget:
            break
        out.append(piece)
    return "".join(out) + ELLIPSIS


def _emoji(notice: Notice) -> str:
    if notice.severity is not None and notice.type.startswith("incident."):
        return _SEVERITY_EMOJI.get(notice.severity.strip().upper(), "⚪")
    return _TYPE_EMOJI[notice.type]


def render_slack(notice: Notice) -> dict[str, Any]:
    """A Slack incoming-webhook message for ``notice``: a fallback ``text`` and Block Kit ``blocks``.

    Header (plain text): the severity's emoji, severity, incident and title
    ("🟠 SEV2 · INC-3 · Checkout errors"), or what happened when there is no
    incident ("⏪ Automatic rollback"). Then the summary, the incident's
    status, services and environment as fields, the detail, and a
    context line with who and when (Slack shows the time in the reader's zone).
    """
    emoji = _emoji(notice)
    label = _LABELS[notice.type]
    incident = _clean(notice.incident, 40)
    severity = _clean(notice.severity, 20)
    title = _clean(notice.title, 200)
    summary = _clean(notice.summary, 500)
    detail = _clean_lines(notice.detail, 4000)

    heading = [part for part in (severity, incident, title) if part] if incident or title else []
    header = f"{emoji} {' · '.join(heading)}" if heading else f"{emoji} {label}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _fit(header, SLACK_LIMITS["header"])}},
    ]
    if summary:
        # Under an incident's header, say what happened to it; otherwise the header did.
        prefix = f"*{label}:* " if heading else ""
        blocks.append(_section(prefix + _fit(summary, SLACK_LIMITS["section"] - _width(prefix))))
    fields = [
        (name, value)
        for name, value in (
            ("Status", _clean(notice.status, 40)),
            ("Services", ", ".join(_services(notice.services))),
            ("Environment", _clean(notice.environment, 100)),
        )
        if value
    ]
    if fields:
        blocks.append({
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n{_fit(value, _FIELD_TEXT)}"}
                for name, value in fields[: SLACK_LIMITS["fields"]]
            ],
        })
    if detail:
        blocks.append(_section(_fit(detail, SLACK_LIMITS["section"])))
    who = _clean(notice.actor, 100)
    when = f"<!date^{int(notice.time)}^{{date_short_pretty}} {{time_secs}}|{rfc3339(notice.time)}>"
    context = [f"by {_fit(who, 200)}" if who else "by Conn", when]
    blocks.append({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": text} for text in context[: SLACK_LIMITS["context_elements"]]],
    })
    named = " ".join(part for part in (severity, incident) if part) if heading else ""
    text = f"{emoji} {named or label}: {summary or label}"
    return {"text": _fit(text, 300), "blocks": blocks[: SLACK_LIMITS["blocks"]]}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# --- retries -----------------------------------------------------------------

BACKOFF_FIRST = 2.0
"""Seconds before the first retry."""
BACKOFF_CAP = 300.0
"""No retry waits longer than five minutes: a fixed webhook catches up soon after."""
_JITTER_SHARE = 0.2


def backoff(attempt: int, jitter: float = 0.0) -> float:
    """Seconds to wait before retry number ``attempt``: 2, 4, 8, … capped at 300.

    Args:
        attempt: 1 for the first retry (after the first failure).
        jitter: a fraction in [0, 1) the caller drew (``random.random()``), so
            that targets failing together do not retry in step; it shortens the
            wait by up to a fifth. 0 (the default) is the plain schedule.

    Raises:
        ValueError: ``attempt`` below 1, or ``jitter`` outside [0, 1).
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt {attempt!r}: retries count from 1")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter {jitter!r} is not a fraction in [0, 1)")
    base = min(BACKOFF_FIRST * 2.0 ** min(attempt - 1, 32), BACKOFF_CAP)
    return base * (1.0 - _JITTER_SHARE * jitter)
