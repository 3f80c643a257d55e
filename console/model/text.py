"""Small wording rules every message shares: "did you mean", and counts of things.

Config errors, flag commands and the demo fleet's fault API all answer a
misspelt name the same way, and every view counts things the same way
("1 service", "3 services"), so these live in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches


def suggest(name: str, among: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for a misspelt ``name``, or "" when nothing is near.

    The nearest spelling (difflib's ratio, at least 0.6) wins; failing that,
    the first known name that ``name`` begins, in any case ("check" ->
    'checkout_v2'). The leading space lets callers append it to a sentence.
    """
    names = list(among)
    match = get_close_matches(name, names, n=1)
    if not match and name:
        match = [n for n in names if n.lower().startswith(name.lower())][:1]
    return f" Did you mean {match[0]!r}?" if match else ""


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one.

    ``plural(1, "service")`` -> "1 service", ``plural(3, "service")`` -> "3 services",
    ``plural(2, "series", "series")``; counts take thousands separators ("1,204 events").
    """
    word = noun if count == 1 else many if many is not None else noun + "s"
    return f"{count:,} {word}"
