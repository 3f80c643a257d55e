"""Deliver one notice to one chat-out target, and say plainly why it did not arrive.

The outbox (in the engine) decides when to try and how often; this module
makes one attempt: redact, render (:mod:`console.model.notify`), POST through
:func:`console.actions.webhooks.call_webhook` (which bounds the answer, words
transport failures and keeps the URL out of every message) with an
``Idempotency-Key`` header so a receiver can drop the duplicates an
at-least-once outbox will sometimes send.

A failure is a :class:`DeliveryError` that tells the outbox two things
besides its message: a short ``code`` to show and group by (Slack's own,
``channel_not_found``; ``http_503``; ``timeout``; ``unreachable``) and
whether it is ``permanent``: an answer that no retry will change (the channel
was archived, the webhook was revoked) until a person fixes something. Such
a notice stays in the outbox and is retried rarely; the UI says "needs
fixing" instead of "retrying".

Slack answers an incoming webhook's failure with a status and the error code
as a plain-text body (``404 channel_not_found``); each known code gets a hint
in operator words.
"""

from __future__ import annotations

import dataclasses
import re

import httpx

from console.actions.webhooks import WebhookError, WebhookOutcome, call_webhook
from console.model.notify import Notice, NotifyFormat, render_json, render_slack
from console.model.sanitize import clean_text
from console.secrets import redact

__all__ = ["SLACK_ERRORS", "DeliveryError", "deliver"]

SLACK_ERRORS: dict[str, tuple[bool, str]] = {
    # code: (permanent, hint)
    "invalid_payload": (True, "Slack could not read the message Conn sent; retrying will not help (report it)"),
    "too_many_attachments": (True, "Slack refused the message's attachments (report it)"),
    "user_not_found": (True, "the user this webhook posts to no longer exists: create a new webhook"),
    "channel_not_found": (True, "the channel was deleted or the webhook's app was removed from it"),
    "channel_is_archived": (True, "the channel is archived: unarchive it or create a webhook for another channel"),
    "action_prohibited": (True, "a workspace admin restricts what this webhook may post"),
    "posting_to_general_channel_denied": (True, "only admins may post in that channel: point the webhook at another one"),
    "invalid_token": (True, "the webhook URL is not valid (revoked or mistyped): create a new one and store it in the secret"),
    "no_service": (True, "the webhook was removed or disabled: create a new one and store it in the secret"),
    "no_service_id": (True, "the webhook URL is incomplete: store the whole URL in the secret"),
    "no_active_hooks": (True, "the webhook is disabled: re-enable it or create a new one"),
    "no_team": (True, "the Slack workspace behind the webhook no longer exists"),
    "team_disabled": (True, "the Slack workspace behind the webhook is disabled"),
    "rollup_error": (False, "a problem on Slack's side; Conn will retry"),
}
"""Slack's incoming-webhook error codes: whether a retry can help, and what to do."""

_RETRYABLE_STATUS = frozenset({408, 425, 429})
"""4xx answers that mean "not now" rather than "never"."""
_RATE_LIMITED = "rate limited; Conn will retry later"
_CODE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
_WHOLE_SECRET = re.compile(r"«secret:[^»]+»")
_NAME_LIMIT = 60


class DeliveryError(WebhookError):
    """A notice did not reach its target.

    Attributes:
        code: what went wrong, short: Slack's code (``channel_not_found``),
            ``http_<status>``, ``timeout``, ``unreachable`` or ``invalid_url``.
        permanent: no retry will change the answer until someone fixes the
            webhook, the channel or the secret.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        permanent: bool,
        status: int | None = None,
        body_excerpt: str = "",
        timed_out: bool = False,
    ) -> None:
        self.code = code
        self.permanent = permanent
        super().__init__(message, status=status, body_excerpt=body_excerpt, timed_out=timed_out)


async def deliver(
    format: NotifyFormat,
    url: str,
    notice: Notice,
    *,
    timeout: float,  # noqa: ASYNC109 - call_webhook's own bound, per phase and overall
    client: httpx.AsyncClient | None = None,
    name: str | None = None,
) -> WebhookOutcome:
    """POST ``notice`` to ``url`` rendered as ``format``; one attempt, done within ``timeout``.

    Args:
        format: "slack" (an incoming-webhook message) or "json" (the generic event).
        url: the webhook's URL, from its secret; it never appears in a message.
        notice: what to say; its text is redacted of every registered secret first.
        timeout: seconds for the whole attempt.
        client: the engine's shared client; a new one for this call otherwise.
        name: how messages name the target (``«secret:NAME»`` by default when the
            URL is a registered secret, else its host).

    Returns:
        The receiver's 2xx answer.

    Raises:
        DeliveryError: the receiver refused it, did not answer in time, or could not
            be reached; ``code`` and ``permanent`` say which and whether to keep trying.
        ValueError: ``format`` is not one Conn renders.
    """
    if format == "slack":
        body = render_slack(_redacted(notice))
    elif format == "json":
        body = render_json(_redacted(notice))
    else:
        raise ValueError(f"{format!r} is not a notification format (slack or json)")
    target = _target(url, name)
    label = f"{'slack' if format == 'slack' else 'webhook'} {target}"
    headers = {"Idempotency-Key": notice.key, "X-Conn-Event": notice.type}
    try:
        return await call_webhook(
            url, body, timeout=timeout, client=client, headers=headers, name=target
        )
    except WebhookError as e:
        raise _delivery_error(format, label, f"webhook {target}", e) from e


def _redacted(notice: Notice) -> Notice:
    """``notice`` with every registered secret value replaced by ``«secret:NAME»``."""
    return dataclasses.replace(
        notice,
        summary=redact(notice.summary),
        incident=None if notice.incident is None else redact(notice.incident),
        title=None if notice.title is None else redact(notice.title),
        severity=None if notice.severity is None else redact(notice.severity),
        status=None if notice.status is None else redact(notice.status),
        services=tuple(redact(service) for service in notice.services),
        actor=redact(notice.actor),
        detail=redact(notice.detail),
        environment=redact(notice.environment),
    )


def _target(url: str, name: str | None) -> str:
    """How messages name the webhook: the caller's name, the secret's, or the host."""
    if name:
        return clean_text(redact(name), _NAME_LIMIT)
    shown = redact(url)
    if _WHOLE_SECRET.fullmatch(shown):  # the URL is a registered secret
        return clean_text(shown, _NAME_LIMIT)
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        host = ""
    return f"at {clean_text(host, _NAME_LIMIT - 3)}" if host else "(URL not shown)"


def _delivery_error(kind: str, label: str, inner: str, error: WebhookError) -> DeliveryError:
    """Classify ``error`` and reword it under ``label`` ("slack «secret:oncall»")."""
    said = str(error)
    # call_webhook names the target "webhook <target>"; the rest of its sentence is kept.
    rest = said[len(inner):] if said.startswith(inner) else f": {said}"
    status = error.status
    if status is None:
        if error.timed_out:
            code, permanent = "timeout", False
        elif isinstance(error.__cause__, httpx.InvalidURL | httpx.UnsupportedProtocol):
            code, permanent = "invalid_url", True
            rest += " (fix the URL stored in the secret)"
        else:
            code, permanent = "unreachable", False
        return DeliveryError(f"{label}{rest}", code=code, permanent=permanent, timed_out=error.timed_out)
    excerpt = error.body_excerpt
    known = SLACK_ERRORS.get(excerpt) if kind == "slack" else None
    hint = known[1] if known else _RATE_LIMITED if status == 429 else ""
    if kind == "slack" and _CODE.match(excerpt):
        # Slack's answer is its code: "404 channel_not_found — <what to do>".
        code = excerpt
        permanent = known[0] if known else _permanent_status(status)
        message = f"{label}: {status} {code}"
    else:
        code = f"http_{status}"
        permanent = _permanent_status(status)
        answer = rest.removeprefix(" answered ")  # " answered HTTP 503 …" -> ": HTTP 503 …"
        message = f"{label}: {answer}" if answer != rest else f"{label}{rest}"
    if hint:
        message += f" — {hint}"
    return DeliveryError(
        message, code=code, permanent=permanent, status=status, body_excerpt=excerpt
    )


def _permanent_status(status: int) -> bool:
    """A redirect (not followed: the URL moved) or a 4xx that is not "try later"."""
    return 300 <= status < 500 and status not in _RETRYABLE_STATUS
