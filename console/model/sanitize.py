"""Make untrusted text safe to put on an operator's terminal.

A health body, a metric label or a command's output can carry bytes that a
terminal obeys rather than shows: ``ESC[2J`` clears the screen, an OSC 8
sequence turns text into a hyperlink to anywhere, ``\\r`` overwrites what
came before on the line, and bidirectional overrides reorder what is read.
Every such string goes through :func:`clean_text` before it reaches a view,
and the UI then escapes Rich markup (``rich.markup.escape``) — this module
stays free of Rich so ``console.model`` imports nothing but the stdlib.

What is removed:

* escape sequences, 7-bit and 8-bit: CSI (``ESC [`` / ``\\x9b``), OSC
  (``ESC ]`` / ``\\x9d``, up to BEL or ST, or to the end when unterminated),
  DCS/SOS/PM/APC strings, and two-byte ``ESC x`` sequences;
* every other C0 and C1 control character and DEL;
* bidirectional embedding, override and isolate controls (U+202A–U+202E,
  U+2066–U+2069), which can make "down" read as "nwod".

Line breaks and tabs (``\\n``, ``\\r``, ``\\t``, ``\\v``, ``\\f``, NEL, U+2028,
U+2029) become single spaces, because every caller shows one line.
"""

from __future__ import annotations

import re

__all__ = ["ELLIPSIS", "clean_text"]

ELLIPSIS = "…"
"""Appended when text was cut; counted within the limit."""

# Control strings: OSC, DCS, SOS, PM, APC in their 7-bit (ESC + letter) and
# 8-bit (single C1 byte) forms, running to BEL, ST (ESC \ or \x9c) or the end
# of the text (an unterminated string would swallow the rest of the screen).
_STRING = (
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])"
    r"(?:[^\x07\x1b\x9c]|\x1b(?!\\))*"
    r"(?:\x07|\x1b\\|\x9c|\Z)"
)
# CSI: parameters, intermediates, then one final byte (or the end of the text).
_CSI = r"(?:\x1b\[|\x9b)[0-?]*[ -/]*(?:[@-~]|\Z)"
# Other escape sequences: ESC, optional intermediates, one final byte.
_ESCAPE = r"\x1b[ -/]*[0-~]?"
_SEQUENCES = re.compile(f"{_STRING}|{_CSI}|{_ESCAPE}")

_LINE_BREAKS = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]+")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# How much of a huge input is looked at: enough for ``limit`` visible
# characters after generous stripping, so a 10 MB body costs a few KB of work.
_SCAN_FACTOR = 8
_SCAN_MIN = 4096


def clean_text(text: str, limit: int = 200) -> str:
    """One line of ``text`` that a terminal will show, never obey.

    Args:
        text: untrusted text (a health body, a label, a command's output).
        limit: the most characters returned, the ellipsis included.

    Returns:
        ``text`` without escape sequences or control characters, line breaks
        turned into spaces, cut to ``limit`` characters ending in "…" when
        anything was cut. Markup (``[bold]``) is left as text: the UI escapes
        it for Rich.
    """
    if limit <= 0:
        return ""
    scan = max(limit * _SCAN_FACTOR, _SCAN_MIN)
    cut = len(text) > scan
    if cut:
        text = text[:scan]
    text = _SEQUENCES.sub("", text)
    text = _LINE_BREAKS.sub(" ", text)
    text = _CONTROLS.sub("", text)
    if cut or len(text) > limit:
        return text[: limit - len(ELLIPSIS)] + ELLIPSIS
    return text
