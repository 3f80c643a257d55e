"""A runbook's Markdown as blocks: which are steps, and what text goes with each.

:mod:`console.model.runbooks` documents the format and builds the model;
this module does the reading, with markdown-it-py's token tree (never
patterns over the text): headings, task lists, fenced blocks and their info
strings (Runme's attributes, in its JSON and key=value forms), and GitHub's
``> [!WARNING]`` alerts. It yields :class:`Draft` steps in document order,
not yet numbered or named, and the front matter's text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from mdit_py_plugins.front_matter import front_matter_plugin

from console.model.sanitize import clean_text

__all__ = ["SHELL_LANGUAGES", "Document", "Draft", "RunbookError", "StepKind", "read_document"]

SHELL_LANGUAGES = frozenset({"sh", "bash", "shell"})
"""Fenced blocks in these languages are steps; any other block is text."""

StepKind = Literal["command", "check", "note"]

_ALERTS = frozenset({"WARNING", "CAUTION"})
_OTHER_ALERTS = {"NOTE": "Note", "TIP": "Tip", "IMPORTANT": "Important"}
_TEXT_LIMIT = 300

# html off: a runbook's HTML is shown as the text it is, never interpreted.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).use(front_matter_plugin)


class RunbookError(ValueError):
    """A runbook that cannot be used as written; ``line`` (1-based) is where, when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass(frozen=True)
class Document:
    """What the Markdown holds, before the front matter is read."""

    front_matter: str | None
    """The text between the ``---`` lines (from line 2), or None without front matter."""
    heading: str | None
    """The first ``#`` heading."""
    summary: str
    warnings: tuple[str, ...]
    """Banners before the first step."""
    drafts: tuple[Draft, ...]


def read_document(text: str) -> Document:
    """The blocks of ``text`` (newlines already normalised to ``\\n``) grouped into draft steps.

    Raises:
        RunbookError: front matter never closed, a code block never closed,
            attributes that are neither JSON nor key=value, a control
            character in a script, an empty code block or check.
    """
    lines = text.split("\n")
    nodes = list(SyntaxTreeNode(_MARKDOWN.parse(text)).children)
    front = None
    if nodes and nodes[0].type == "front_matter":
        front = nodes.pop(0).content
    elif lines[0].startswith("---") and not lines[0].strip("-").strip():
        raise RunbookError("the front matter opened here is never closed (end it with a line of ---)", 1)
    builder = _Builder(lines)
    for node in nodes:
        builder.block(node)
    drafts = builder.finish()
    return Document(
        front_matter=front, heading=builder.heading, summary=join(builder.summary),
        warnings=tuple(builder.runbook_warnings), drafts=tuple(drafts),
    )


@dataclass
class Draft:
    """A step as read, in document order; the model numbers and names it and reads its attributes."""

    title: str
    """Its section's heading; "" before the first ``##`` (the runbook's title is used)."""
    kind: StepKind
    line: int
    body: list[str]
    warnings: list[str]
    checks: tuple[str, ...] = ()
    command: str | None = None
    language: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    """As written in the info string: Runme's keys and Conn's ``conn.`` ones."""


class _Builder:
    """Walks the top-level blocks in order and groups them into steps."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self.heading: str | None = None
        """The first ``#`` heading: the title when the front matter gives none."""
        self.summary: list[str] = []
        self.runbook_warnings: list[str] = []
        self._drafts: list[Draft] = []
        self._section: str | None = None  # None: before the first ``##``
        self._section_line = 0
        self._section_start = 0  # index of the section's first draft
        self._body: list[str] = []
        self._warnings: list[str] = []
        self._checks: list[tuple[str, int]] = []

    # Blocks in document order ------------------------------------------------------------

    def block(self, node: SyntaxTreeNode) -> None:
        kind = node.type
        if kind == "heading" and node.tag == "h2":
            self._end_section()
            self._section = _clean(_inline(node), _TEXT_LIMIT) or "(untitled)"
            self._section_line = _line(node)
            self._section_start = len(self._drafts)
            return
        if kind == "heading" and node.tag == "h1" and self.heading is None:
            self.heading = _clean(_inline(node), _TEXT_LIMIT) or None
            return
        self._content(node)

    def _content(self, node: SyntaxTreeNode) -> None:
        kind = node.type
        if kind in ("bullet_list", "ordered_list"):
            self._list(node)
            return
        if kind == "fence":
            self._fence(node)
            return
        self._flush_checks()
        if kind == "heading":
            self._text(_clean(_inline(node), _TEXT_LIMIT))
        elif kind == "paragraph":
            self._text(_block_text(_inline(node)))
        elif kind == "blockquote":
            self._quote(node)
        elif kind in ("code_block", "html_block"):
            self._text(_block_text(node.content.rstrip("\n")))

    def _list(self, node: SyntaxTreeNode) -> None:
        """Task items are checks; other items are text; shell blocks inside items are steps."""
        ordered = node.type == "ordered_list"
        for number, item in enumerate(node.children, start=int(node.attrs.get("start", 1) or 1)):
            for position, child in enumerate(item.children):
                if position == 0 and child.type == "paragraph":
                    text = _inline(child)
                    check = _task(text)
                    if check is not None:
                        if not check:
                            raise RunbookError("a check item has no text", _line(child))
                        self._checks.append((_clean(check, _TEXT_LIMIT), _line(child)))
                        continue
                    self._flush_checks()
                    self._text(_block_text(f"{number}. {text}" if ordered else f"- {text}"))
                else:
                    self._content(child)

    def _fence(self, node: SyntaxTreeNode) -> None:
        line = _line(node)
        self._check_closed(node, line)
        language, attributes = _info(node.info, line)
        if language not in SHELL_LANGUAGES:
            self._flush_checks()
            if any(str(key).startswith("conn.") for key in attributes):
                what = f"a {language!r} block" if language else "a block without a language"
                raise RunbookError(f"conn. attributes apply to sh and bash blocks only, not to {what}", line)
            self._text(_block_text(node.content.rstrip("\n")))
            return
        self._flush_checks()
        self._step(Draft(
            title="", kind="command", line=line, body=[], warnings=[],
            command=_script(node.content, line), language=language, attributes=attributes,
        ))

    def _check_closed(self, node: SyntaxTreeNode, line: int) -> None:
        """markdown-it closes a fence at the end of the document; a runbook must close it itself."""
        start, end = node.map or (line - 1, line)
        last = self._lines[end - 1].lstrip(" >\t") if end - 1 > start else ""
        marker = node.markup
        closing = last.rstrip()
        if not (closing and set(closing) == {marker[0]} and len(closing) >= len(marker)):
            raise RunbookError(
                f"the code block opened here is never closed (end it with a line of {marker})", line
            )

    def _quote(self, node: SyntaxTreeNode) -> None:
        parts = [_quoted_text(child) for child in node.children]
        first, _, rest = (parts[0] if parts else "").partition("\n")
        marker = first.strip()
        kind = marker[2:-1].upper() if marker.startswith("[!") and marker.endswith("]") else ""
        if kind in _ALERTS:
            text = join([rest, *parts[1:]]) or kind.capitalize()
            self._warn(text)
        elif kind in _OTHER_ALERTS:
            self._text(f"{_OTHER_ALERTS[kind]}: {join([rest, *parts[1:]])}")
        else:
            self._text("\n".join("> " + line for line in join(parts).split("\n")))

    # Grouping -----------------------------------------------------------------------------

    def _text(self, text: str) -> None:
        if not text:
            return
        if self._section is None and not self._drafts:
            self.summary.append(text)
        else:
            self._body.append(text)

    def _warn(self, text: str) -> None:
        if self._section is None and not self._drafts:
            self.runbook_warnings.append(text)
        else:
            self._warnings.append(text)

    def _flush_checks(self) -> None:
        if self._checks:
            checks, self._checks = self._checks, []
            self._step(Draft(
                title="", kind="check", line=checks[0][1], body=[], warnings=[],
                checks=tuple(text for text, _ in checks),
            ))

    def _step(self, draft: Draft) -> None:
        draft.body, draft.warnings = self._body, self._warnings
        self._body, self._warnings = [], []
        draft.title = self._section or ""
        self._drafts.append(draft)

    def _end_section(self) -> None:
        self._flush_checks()
        if self._drafts[self._section_start :]:
            last = self._drafts[-1]
            last.body += self._body
            last.warnings += self._warnings
        elif self._section is not None:
            self._drafts.append(Draft(
                title=self._section, kind="note", line=self._section_line,
                body=self._body, warnings=self._warnings,
            ))
        self._body, self._warnings = [], []

    def finish(self) -> list[Draft]:
        self._end_section()
        return self._drafts


# --- info strings, scripts, inline text ----------------------------------------------------


def _info(info: str, line: int) -> tuple[str, dict[str, Any]]:
    """A fence's info string → (language, attributes), in Runme's JSON or key=value form."""
    info = info.strip()
    split = len(info)
    for position, char in enumerate(info):
        if char.isspace() or char == "{":
            split = position
            break
    language, rest = info[:split].lower(), info[split:].strip()
    if not rest:
        return language, {}
    if language not in SHELL_LANGUAGES and "conn." not in rest:
        return language, {}  # another tool's attributes on a block that is only text here
    if not rest.startswith("{"):
        raise RunbookError(
            f"after the language, Conn reads only attributes in braces "
            f'({{"name": "restart-api"}}), not {clean_text(rest, 60)!r}', line,
        )
    if not rest.endswith("}"):
        raise RunbookError(f"the attributes {clean_text(rest, 60)!r} are not closed with '}}'", line)
    inner = rest[1:-1].strip()
    if not inner:
        return language, {}
    if inner.startswith('"'):
        try:
            data = json.loads(rest, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as e:
            raise RunbookError(
                f"the attributes are not valid JSON: {e.msg} at character {e.pos + 1} of {clean_text(rest, 80)!r}",
                line,
            ) from None
        except _DuplicateKey as e:
            raise RunbookError(f"the attribute {e.key!r} is given twice", line) from None
        return language, data
    return language, _key_values(inner, rest, line)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(key)
        data[key] = value
    return data


def _key_values(inner: str, rest: str, line: int) -> dict[str, str]:
    """Runme's older form: ``{ name=restart-api interactive=false conn.dangerous }``."""
    data: dict[str, str] = {}
    for word in inner.split():
        key, _, value = word.partition("=")
        if not key or not key.replace(".", "_").replace("-", "_").isidentifier():
            raise RunbookError(
                f'the attributes are neither JSON ({{"name": "x"}}) nor key=value ({{ name=x }}): '
                f"{clean_text(rest, 80)!r}", line,
            )
        if key in data:
            raise RunbookError(f"the attribute {key!r} is given twice", line)
        data[key] = value
    return data


def _script(content: str, line: int) -> str:
    """The block's script: ``$ `` prompts dropped; control characters refused (what is shown runs)."""
    lines = []
    for offset, text in enumerate(content.rstrip("\n").split("\n"), start=1):
        if text.startswith("$ ") or text == "$":
            text = text[2:]
        bad = next((c for c in text if c != "\t" and not c.isprintable()), None)
        if bad is not None:
            raise RunbookError(
                f"a control character ({ord(bad):#04x}) in the code block; write it as an escape "
                "such as \\e or \\x1b so what is shown is what runs", line + offset,
            )
        lines.append(text)
    script = "\n".join(lines)
    if not script.strip():
        raise RunbookError("the code block is empty", line)
    return script


def _task(text: str) -> str | None:
    """The text of a task item (``[ ] text``, ``[x] text``), or None for another item."""
    for box in ("[ ]", "[x]", "[X]"):
        if text == box or text.startswith(box + " ") or text.startswith(box + "\n"):
            return text[len(box) :].strip()
    return None


def _inline(node: SyntaxTreeNode) -> str:
    """The plain text of a heading or paragraph: markup dropped, code in backticks, links with their URL."""
    inline = next((child for child in node.children if child.type == "inline"), None)
    return _inline_text(inline) if inline is not None else ""


def _inline_text(node: SyntaxTreeNode) -> str:
    parts = []
    for child in node.children:
        kind = child.type
        if kind in ("text", "html_inline"):
            parts.append(child.content)
        elif kind == "code_inline":
            parts.append(f"`{child.content}`")
        elif kind == "softbreak" or kind == "hardbreak":
            parts.append("\n")
        elif kind == "link":
            label, href = _inline_text(child), str(child.attrs.get("href", ""))
            parts.append(label if not href or href == label or href == f"mailto:{label}" else f"{label} ({href})")
        else:  # em, strong, image (its alt text), anything a plugin adds
            parts.append(_inline_text(child) if child.children else child.content)
    return "".join(parts)


def _quoted_text(node: SyntaxTreeNode) -> str:
    if node.type == "paragraph":
        return _block_text(_inline(node))
    if node.type in ("fence", "code_block"):
        return _block_text(node.content.rstrip("\n"))
    return join(_quoted_text(child) for child in node.children) if node.children else ""


def _block_text(text: str) -> str:
    """Multi-line text from the file, each line made safe to show."""
    return "\n".join(clean_text(line, 2000).rstrip() for line in text.split("\n")).strip("\n")


def _clean(text: str, limit: int) -> str:
    return clean_text(text, limit).strip()


def join(parts: Iterable[str]) -> str:
    return "\n\n".join(part for part in parts if part)


def _line(node: SyntaxTreeNode) -> int:
    return (node.map[0] + 1) if node.map else 0
