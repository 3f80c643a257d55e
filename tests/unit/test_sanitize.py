"""clean_text: untrusted text reaches the terminal as text, never as commands."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.markup import escape
from rich.text import Text

from console.model.sanitize import ELLIPSIS, clean_text

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[2Jdown", "down"),  # clear screen
        ("\x1b[1;31mred\x1b[0m", "red"),  # SGR colours
        ("\x1b[?1049h\x1b[Hx", "x"),  # alternate screen, cursor home
        ("\x9b31mred\x9b0m", "red"),  # 8-bit C1 CSI
        ("\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07", "click"),  # OSC 8, BEL
        ("\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\", "click"),  # OSC 8, ST
        ("\x9d0;title\x9cok", "ok"),  # 8-bit OSC and ST
        ("\x1b]0;set the window title", ""),  # unterminated OSC swallows the rest
        ("a\x1bPq#0;2;0;0;0\x1b\\b", "ab"),  # DCS (sixel)
        ("\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\z", "z"),  # APC, PM, SOS
        ("\x1b(B\x1b=\x1b7saved", "saved"),  # charset, keypad, save cursor
        ("\x1b[", ""),  # a truncated CSI at the end
        ("nul\x00bel\x07bs\x08del\x7f", "nulbelbsdel"),
        ("ok\rFAKE", "ok FAKE"),  # carriage return cannot overwrite
        ("a\r\nb\n\nc\td", "a b c d"),
        ("line\u2028sep\x85nel", "line sep nel"),
        ("\u202enwod\u202c", "nwod"),  # bidi override removed, text kept in order
        ("[bold red]x[/]", "[bold red]x[/]"),  # markup is the UI's job
        ("café ✓ 日本語", "café ✓ 日本語"),
    ],
)
def test_clean_text_removes_what_a_terminal_would_obey(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_cut_text_ends_with_an_ellipsis_within_the_limit() -> None:
    assert clean_text("abcdefghij", 5) == "abcd" + ELLIPSIS
    assert clean_text("abcde", 5) == "abcde"
    assert clean_text("anything", 0) == ""


def test_escape_sequences_do_not_count_against_the_limit() -> None:
    assert clean_text("\x1b[31m" * 10 + "hello", 5) == "hello"


def test_huge_input_costs_little_and_stays_bounded() -> None:
    huge = ("\x1b[31m[bold]x[/]\n" * 1_000_000) + "tail"
    started = time.perf_counter()
    out = clean_text(huge, 200)
    assert time.perf_counter() - started < 0.1
    assert len(out) == 200
    assert out.endswith(ELLIPSIS)
    assert "\x1b" not in out


def test_unterminated_osc_in_huge_input_is_linear() -> None:
    started = time.perf_counter()
    # the input was cut before the scan, so the ellipsis says there was more
    assert clean_text("ok\x1b]8;;" + "a" * 5_000_000) == "ok" + ELLIPSIS
    assert time.perf_counter() - started < 0.1


def test_cleaned_and_escaped_text_renders_literally_in_rich() -> None:
    hostile = "[bold red]x[/]\x1b[2J[link=http://evil.example]db[/link]"
    shown = Text.from_markup(escape(clean_text(hostile)))
    assert shown.plain == "[bold red]x[/][link=http://evil.example]db[/link]"
    assert not shown.spans  # no style, no link survived


@given(st.text(), st.integers(min_value=0, max_value=300))
def test_output_is_one_bounded_line_without_controls(text: str, limit: int) -> None:
    out = clean_text(text, limit)
    assert len(out) <= limit
    assert not _FORBIDDEN.search(out)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp"))))
def test_plain_printable_text_is_untouched(text: str) -> None:
    assert clean_text(text, 10_000) == text
