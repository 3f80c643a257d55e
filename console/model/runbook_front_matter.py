"""The front matter of a runbook: the small, strict subset of YAML that runbooks use.

YAML is not one of Conn's dependencies, and a runbook's front matter needs
little of it, so this reads a documented subset and refuses the rest with
the line at fault (rather than guess what a full YAML parser would have
made of it)::

    ---
    title: High error rate            # a scalar: plain, "double" or 'single' quoted
    severity: SEV2
    alerts:                           # a block list: one "- item" per line
      - alertname="HighErrorRate"
    secrets: [deploy_token]           # a flow list, on one line
    vars:                             # one level of mapping
      ROLLOUT: checkout
      REASON: ""
    runme:                            # Runme's own keys: skipped, however nested
      id: 01HF7BT3HD84GWTQB9008APC3C
    ---

Not supported (each an error naming its line): flow mappings (``{a: b}``),
block scalars (``|``, ``>``), anchors, aliases and tags, lists of mappings,
nesting deeper than one level, tabs for indentation, and a key given twice.
Every value stays text (``true`` is the text "true"); the caller decides
what a key's text means. Everything written this way is also valid YAML, so
GitHub renders the front matter as a table.

This module knows nothing of which keys a runbook has: see
:mod:`console.model.runbooks`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["FrontMatterError", "FrontMatterValue", "parse_front_matter"]

FrontMatterValue = str | None | tuple[str, ...] | dict[str, str]
"""A scalar (None when empty or ``null``), a list, or a one-level mapping."""


class FrontMatterError(ValueError):
    """The front matter is outside the supported subset; ``line`` is 1-based in the file."""

    def __init__(self, message: str, line: int) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}")


@dataclass(frozen=True)
class Entry:
    """One top-level key: its value and the line it is on."""

    value: FrontMatterValue
    line: int


_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


def parse_front_matter(
    text: str, *, first_line: int, opaque: frozenset[str] = frozenset()
) -> dict[str, Entry]:
    """The top-level keys of a front matter block, in order.

    Args:
        text: the lines between the ``---`` markers.
        first_line: the file's line number of the first line of ``text``.
        opaque: keys whose value is skipped unread, however nested (another
            tool's metadata, such as Runme's ``runme:``); they map to None.

    Raises:
        FrontMatterError: naming the line and what to write instead.
    """
    entries: dict[str, Entry] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        raw, number = lines[index], first_line + index
        index += 1
        if _blank(raw):
            continue
        if raw[0] in " \t":
            raise FrontMatterError(
                f"unexpected indentation: {raw.strip()!r} is not under a key that takes a list or mapping",
                number,
            )
        key, rest = _key(raw, number)
        if key in entries:
            raise FrontMatterError(f"{key!r} is given twice (first on line {entries[key].line})", number)
        children: list[tuple[str, int]] = []
        while index < len(lines) and (_blank(lines[index]) or lines[index][0] in " \t"):
            if not _blank(lines[index]):
                children.append((lines[index], first_line + index))
            index += 1
        if key in opaque:
            entries[key] = Entry(None, number)
            continue
        if rest:
            value = _inline_value(rest, number)
            if children:
                raise FrontMatterError(
                    f"{key!r} has a value on its own line and indented lines under it; give one or the other",
                    children[0][1],
                )
            entries[key] = Entry(value, number)
        else:
            entries[key] = Entry(_block(key, children) if children else None, number)
    return entries


def _blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _key(raw: str, number: int) -> tuple[str, str]:
    """``key: rest`` → (key, rest without a trailing comment's spaces)."""
    key, colon, rest = raw.partition(":")
    key = key.strip()
    if not colon or not key or (not rest[:1].isspace() and rest):
        raise FrontMatterError(f"expected 'key: value', found {raw.strip()!r}", number)
    if not key.replace("_", "a").replace("-", "a").replace(".", "a").isalnum():
        raise FrontMatterError(f"{key!r} is not a key (letters, digits, '_', '-', '.')", number)
    return key, rest.strip()


def _block(key: str, children: list[tuple[str, int]]) -> tuple[str, ...] | dict[str, str]:
    """The indented lines under ``key:``: all list items, or all ``name: value`` pairs."""
    indent = _indent(children[0])
    items: list[str] = []
    mapping: dict[str, str] = {}
    mapping_lines: dict[str, int] = {}
    for raw, number in children:
        if _indent((raw, number)) != indent:
            raise FrontMatterError(
                f"only one level of nesting is supported, indented alike (under {key!r})", number
            )
        body = raw.strip()
        if body == "-" or body.startswith("- "):
            if mapping:
                raise FrontMatterError(f"{key!r} mixes list items and 'name: value' lines", number)
            item = body[1:].strip()
            if _looks_like_pair(item):
                raise FrontMatterError(
                    f"lists of mappings are not supported (under {key!r}); quote the item if it is text",
                    number,
                )
            items.append(_scalar(item, number) or "")
            continue
        if items:
            raise FrontMatterError(f"{key!r} mixes list items and 'name: value' lines", number)
        name, value = _key(body, number)
        if name in mapping:
            raise FrontMatterError(
                f"{name!r} is given twice under {key!r} (first on line {mapping_lines[name]})", number
            )
        if not value:
            raise FrontMatterError(
                f"only one level of nesting is supported: give {name!r} a value on its line "
                '(write "" for an empty one)',
                number,
            )
        parsed = _inline_value(value, number)
        if isinstance(parsed, tuple):
            raise FrontMatterError(f"{name!r} under {key!r} takes one value, not a list", number)
        mapping[name] = parsed or ""
        mapping_lines[name] = number
    return tuple(items) if items else mapping


def _indent(child: tuple[str, int]) -> int:
    raw, number = child
    width = len(raw) - len(raw.lstrip(" \t"))
    if "\t" in raw[:width]:
        raise FrontMatterError("indent with spaces, not tabs", number)
    return width


def _looks_like_pair(item: str) -> bool:
    """``key: value`` (a mapping in YAML); a quoted item or one without ``: `` is text."""
    if item[:1] in ("'", '"'):
        return False
    key, colon, rest = item.partition(":")
    return bool(colon) and (not rest or rest[:1].isspace()) and " " not in key.strip()


def _inline_value(rest: str, number: int) -> str | tuple[str, ...] | None:
    """A value on the key's own line: a scalar or a one-line flow list."""
    if rest.startswith("["):
        return _flow_list(rest, number)
    return _scalar(rest, number)


def _scalar(raw: str, number: int) -> str | None:
    """A plain, double-quoted or single-quoted scalar, with an optional ``# comment`` after it."""
    raw = raw.strip()
    if raw.startswith('"'):
        end = _closing(raw, '"', number)
        try:
            value: str = json.loads(raw[: end + 1])
        except json.JSONDecodeError as e:
            raise FrontMatterError(f"bad escape in the quoted text {raw[: end + 1]!r} ({e.msg})", number) from None
        _only_comment(raw[end + 1 :], number)
        return value
    if raw.startswith("'"):
        end = _closing(raw, "'", number)
        _only_comment(raw[end + 1 :], number)
        return raw[1:end].replace("''", "'")
    first = raw[:1]
    if first == "{":
        raise FrontMatterError("flow mappings ({a: b}) are not supported: write one 'name: value' per line", number)
    if first in ("|", ">"):
        raise FrontMatterError("block scalars (| and >) are not supported: write the text on one line", number)
    if first in ("&", "*", "!"):
        raise FrontMatterError("anchors, aliases and tags (&, *, !) are not supported", number)
    if first == "[":
        raise FrontMatterError("a list is not allowed here", number)
    value = raw.split(" #", 1)[0].strip()
    return None if value in _NULLS else value


def _closing(raw: str, quote: str, number: int) -> int:
    """The index of the quote that closes the one at 0."""
    position = 1
    while position < len(raw):
        char = raw[position]
        if quote == '"' and char == "\\":
            position += 2
            continue
        if char == quote:
            if quote == "'" and raw[position + 1 : position + 2] == "'":
                position += 2
                continue
            return position
        position += 1
    raise FrontMatterError(f"the quoted text {raw!r} is not closed (quotes must close on the same line)", number)


def _only_comment(rest: str, number: int) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise FrontMatterError(f"unexpected {rest!r} after the quoted text", number)


def _flow_list(raw: str, number: int) -> tuple[str, ...]:
    """``[a, "b, c", {x="1", y="2"}]``: commas inside quotes or braces do not split."""
    items: list[str] = []
    depth = 0
    quote = ""
    start = 1
    position = 1
    while position < len(raw):
        char = raw[position]
        if quote:
            if char == "\\" and quote == '"':
                position += 1
            elif char == quote:
                quote = ""
        elif char in ("'", '"'):
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "[":
            raise FrontMatterError("nested lists are not supported", number)
        elif char == "," and depth == 0:
            items.append(raw[start:position])
            start = position + 1
        elif char == "]" and depth == 0:
            items.append(raw[start:position])
            _only_comment(raw[position + 1 :], number)
            words = [item.strip() for item in items]
            if words and not words[-1]:
                words.pop()  # a trailing comma
            if any(not word for word in words):
                raise FrontMatterError(f"an empty item in the list {raw!r}", number)
            return tuple(_scalar(word, number) or "" for word in words)
        position += 1
    raise FrontMatterError(f"the list {raw!r} is not closed with ']' (a flow list stays on one line)", number)
