"""Turning untrusted strings into renderables that cannot inject markup or escapes."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text

from console.model.sanitize import clean_text
from console.secrets import redact


def safe_text(value: str, *, limit: int = 200, style: str = "") -> Text:
    """A literal Text (never parsed as markup), stripped of control sequences, secrets redacted."""
    return Text(
        clean_text(redact(value), limit=limit), style=style, no_wrap=True, overflow="ellipsis"
    )


def safe_markup(value: str, *, limit: int = 200) -> str:
    """Escaped for Rich markup, stripped of control sequences, secrets redacted."""
    return escape(clean_text(redact(value), limit=limit))


def format_age(seconds: float | None) -> str:
    """``4s``, ``3m``, ``2h``, ``5d``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h"
    return f"{seconds // 86400:.0f}d"
