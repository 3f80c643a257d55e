"""Numbers at dotted paths in a health JSON body ("metrics.cache_hit_rate", "checks.0.latency").

A health body is untrusted: every miss says which part of the path is
missing or of the wrong kind, and nothing but a JSON number (or boolean)
counts as a value.
"""

from __future__ import annotations

import math
from typing import Any


def extract_json_path(body: Any, path: str) -> tuple[float | None, str]:
    """The number at a dotted path in a parsed JSON body, or why there is none.

    Segments index objects by key and lists by position ("checks.0.latency").
    Booleans count as 1 and 0, so a flag like ``circuit_open`` can carry a
    threshold. Strings are not parsed: a health body is untrusted and "93%"
    is not a number.

    Returns:
        (value, "") on success, else (None, a short reason naming the path).
    """
    node = body
    segments = path.split(".")
    for depth, segment in enumerate(segments):
        if isinstance(node, dict):
            if segment not in node:
                return None, f"health JSON has no {'.'.join(segments[: depth + 1])}"
            node = node[segment]
        elif isinstance(node, list) and segment.isdigit():
            if int(segment) >= len(node):
                return None, f"health JSON has no {'.'.join(segments[: depth + 1])}"
            node = node[int(segment)]
        else:
            parent = ".".join(segments[:depth]) or "the body"
            return None, f"health JSON: {parent} is {_json_kind(node)}, not an object"
    if isinstance(node, bool):
        return float(node), ""
    if isinstance(node, int | float):
        try:
            number = float(node)
        except OverflowError:  # JSON integers are unbounded: 1e400 written out
            number = math.inf
        if not math.isfinite(number):
            return None, f"health JSON: {path} is not a finite number"
        return number, ""
    return None, f"health JSON: {path} is {_json_kind(node)}, not a number"


def _json_kind(node: Any) -> str:
    if node is None:
        return "null"
    if isinstance(node, str):
        return "text"
    if isinstance(node, list):
        return "a list"
    if isinstance(node, dict):
        return "an object"
    return "a number"
