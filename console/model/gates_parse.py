"""Criteria as rollout plans write them: ``p95 < 500ms``, ``error_rate > 5% for 5m``.

Why a grammar of our own: criteria are config strings that release captains
copy from their plans, and ``conn check`` must quote one and point at the part
it cannot read. So the text is the criterion: :func:`parse_criterion` reads
it, ``str(criterion)`` writes it back in the canonical spelling, and
``parse_criterion(str(c)) == c`` for every criterion.

The grammar (tokens may be separated by spaces; the unit sits on its number)::

    criterion := SIGNAL ["increase"] OP value [("for" | "within") DURATION]
    value     := NUMBER [UNIT] | FACTOR "x" "baseline"
    OP        := "<" | "<=" | ">" | ">="
    UNIT      := "ms" | "s" | "m"      latency, compared in ms (the unit Conn shows latency in)
               | "%"                   a rate or share, compared in percent (the unit Conn shows rates in)
               |                       (none) a count, or a named signal in its own unit
    DURATION  := NUMBER ("ms" | "s" | "m" | "h" | "d"), more than 0

Meaning, beyond the words:

- ``SIGNAL OP value``: the signal's current value;
- ``… for D``: the comparison held at every sample of the last D;
- ``health_failures OP N within D``: failed probes counted within D (always needs ``within``);
- ``SIGNAL increase OP N within D``: a counter's increase within D, resets counted,
  never negative (Prometheus ``increase()`` without extrapolation; needs ``within``);
- ``FACTORx baseline``: compared with FACTOR times the baseline service's value
  of the same signal (the same count, for counts).

Units are checked where they are known: p50/p95/p99 take a time unit,
error_rate/probe_errors take %, counts take none; a named signal's configured
unit is checked when :func:`parse_criterion` is given it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, cast

from console.model.units import format_duration, parse_duration

Op = Literal["<", "<=", ">", ">="]
Unit = Literal["ms", "s", "m", "%", ""]
WindowKind = Literal["for", "within"]

OPERATORS: tuple[Op, ...] = ("<", "<=", ">", ">=")
HEALTH_FAILURES = "health_failures"
"""The derived signal: failed probes counted within a window; every service has it."""
LATENCY_SIGNALS = ("p50", "p95", "p99")
PERCENT_SIGNALS = ("error_rate", "probe_errors")

TIME_UNITS: dict[str, float] = {"ms": 1.0, "s": 1000.0, "m": 60_000.0}
"""Milliseconds per latency unit."""
_DURATION_UNITS = ("ms", "s", "m", "h", "d")
_SIGNAL = re.compile(r"^[a-z][a-z0-9_]*$")
_VALUE_EXAMPLES = "a number such as 500ms, 0.1% or 5, or a factor such as 1.5x baseline"
_UNIT_WORDS = "ms, s or m (latency), % (rates), none (counts), or x baseline"


@dataclass(frozen=True)
class Criterion:
    """One parsed criterion; ``str()`` gives its canonical text.

    Attributes:
        signal: "p95", "error_rate", "health_failures" or a named signal.
        op: the comparison.
        number: the number as written: 500 in "500ms", 0.1 in "0.1%", 1.5 in "1.5x baseline".
        unit: the unit as written ("" for none, and for a factor).
        relative: "x baseline": ``number`` is a factor of the baseline's value.
        increase: the counter's increase within the window, not its value.
        window: "for" (sustained), "within" (counted), or None (the current value).
        seconds: the window's length in seconds (0 without one).
    """

    signal: str
    op: Op
    number: float
    unit: Unit = ""
    relative: bool = False
    increase: bool = False
    window: WindowKind | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        problem = _shape_problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def counts(self) -> bool:
        """A count within the window (health_failures, or a counter's increase)."""
        return self.signal == HEALTH_FAILURES or self.increase

    @property
    def threshold(self) -> float | None:
        """The absolute level in the signal's unit (ms for time units); None when relative."""
        if self.relative:
            return None
        return self.number * TIME_UNITS[self.unit] if self.unit in TIME_UNITS else self.number

    @property
    def factor(self) -> float | None:
        """The baseline factor; None when absolute."""
        return self.number if self.relative else None

    @property
    def value_unit(self) -> str:
        """The unit values are compared and shown in: "ms", "%", or "" (counts, unknown)."""
        if self.counts:
            return ""
        if self.unit in TIME_UNITS or self.signal in LATENCY_SIGNALS:
            return "ms"
        if self.unit == "%" or self.signal in PERCENT_SIGNALS:
            return "%"
        return ""

    def compare(self, value: float, level: float) -> bool:
        """``value OP level``."""
        if self.op == "<":
            return value < level
        if self.op == "<=":
            return value <= level
        if self.op == ">":
            return value > level
        return value >= level

    def __str__(self) -> str:
        subject = f"{self.signal} increase" if self.increase else self.signal
        value = f"{number_text(self.number)}x baseline" if self.relative else (
            f"{number_text(self.number)}{self.unit}"
        )
        text = f"{subject} {self.op} {value}"
        return f"{text} {self.window} {duration_text(self.seconds)}" if self.window else text


def _shape_problem(c: Criterion) -> str:
    """What makes a criterion meaningless, or "" (the parser says it with a column)."""
    if not _SIGNAL.match(c.signal):
        return f"{c.signal!r} is not a signal name"
    if c.op not in OPERATORS or not math.isfinite(c.number):
        return "needs an operator and a finite number"
    if c.relative and (c.unit or c.number <= 0):
        return "a baseline factor has no unit and is more than 0"
    if (c.window is None) != (c.seconds == 0) or not math.isfinite(c.seconds) or c.seconds < 0:
        return "a window needs a duration longer than 0"
    if c.signal == HEALTH_FAILURES and c.increase:
        return "health_failures is already a count"
    if c.counts and c.window != "within":
        return f"{c.signal} counts within a window: it needs 'within'"
    if c.window == "within" and not c.counts:
        return "'within' counts: health_failures, or SIGNAL increase"
    return "" if c.relative else _unit_problem(c.signal, c.unit, c.counts, c.increase, None)


def number_text(number: float) -> str:
    """The shortest decimal that reads back as exactly ``number``, never in exponent form."""
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return format(Decimal(repr(number)), "f")


def duration_text(seconds: float) -> str:
    """The config spelling ("5m", "90s", "500ms"), exact enough to read back as ``seconds``."""
    text = format_duration(seconds)
    return text if parse_duration(text) == seconds else f"{number_text(seconds)}s"


def span_text(seconds: float) -> str:
    """A length of time as people say it: "6m 2s", "1m", "1.5s", "500ms", "1h 30m"."""
    seconds = round(seconds, 3)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds > 0 else "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{int(hours)}h"] if hours else []
    parts += [f"{int(minutes)}m"] if minutes else []
    if secs >= 0.0005:
        parts.append(f"{secs:.3f}".rstrip("0").rstrip(".") + "s")
    return " ".join(parts)


class CriterionError(ValueError):
    """A criterion that cannot be read, with where and what was expected there.

    Attributes:
        text: the criterion as written.
        column: 0-based column of the bad part (``len(text.rstrip()) + 1`` when
            something is missing at the end).
        length: how many characters the bad part spans (at least 1).
        message: what was expected there, and what was found.
    """

    def __init__(self, text: str, column: int, message: str, length: int = 1) -> None:
        super().__init__(f"{message} (column {column + 1} of {text!r})")
        self.text = text
        self.column = column
        self.length = max(1, length)
        self.message = message

    def pointer(self) -> str:
        """Two lines for ``conn check``: the text, and carets under the bad part."""
        shown = "".join(" " if ch in "\t\r\n" else ch for ch in self.text)
        return f"{shown}\n{' ' * self.column}{'^' * self.length}"


# --- reading -------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<number>-?\d+(?:\.\d+)?)(?P<suffix>[A-Za-z_%×µ]*)"
    r"|(?P<op><=|>=|==|!=|=<|=>|<|>|=|≤|≥)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<other>.)"
)
_OP_SPELLINGS = {"≤": "<=", "≥": ">=", "=<": "<=", "=>": ">="}


@dataclass(frozen=True)
class _Token:
    kind: Literal["number", "op", "word", "other"]
    text: str
    start: int
    suffix: str = ""

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def suffix_start(self) -> int:
        return self.end - len(self.suffix)

    @property
    def digits(self) -> str:
        return self.text[: len(self.text) - len(self.suffix)]


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "space":
            continue
        if match.group("number") is not None:
            kind = "number"
        found.append(_Token(
            cast(Literal["number", "op", "word", "other"], kind),
            match.group(0),
            match.start(),
            match.group("suffix") or "",
        ))
    return found


def parse_criterion(text: str, *, units: Mapping[str, str] | None = None) -> Criterion:
    """Read one criterion (grammar in the module docstring).

    Args:
        text: the criterion as written.
        units: configured units of named signals ("%", "ms", "", "req/s"); when
            the criterion's signal is among them, its unit is checked too.

    Raises:
        CriterionError: with the column of the bad part and what was expected there.
    """
    return _Reader(text, units or {}).criterion()


def unknown_signals(criterion: Criterion, known: Collection[str]) -> list[str]:
    """The signals ``criterion`` reads that are not in ``known`` (health_failures is always known)."""
    if criterion.signal == HEALTH_FAILURES or criterion.signal in known:
        return []
    return [criterion.signal]


class _Reader:
    def __init__(self, text: str, units: Mapping[str, str]) -> None:
        self.text = text
        self.units = units
        self.tokens = _tokens(text)
        self.index = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self) -> _Token | None:
        token = self._peek()
        self.index += token is not None
        return token

    def _end_column(self) -> int:
        stripped = self.text.rstrip()
        return len(stripped) + 1 if stripped else 0

    def _error(self, token: _Token | None, expected: str, *, found: bool = True) -> CriterionError:
        if token is None:
            return CriterionError(self.text, self._end_column(), f"expected {expected}, found the end")
        said = f", found {token.text!r}" if found else ""
        return CriterionError(self.text, token.start, f"expected {expected}{said}", len(token.text))

    def _at(self, token: _Token | None, message: str) -> CriterionError:
        if token is None:
            return CriterionError(self.text, self._end_column(), message)
        return CriterionError(self.text, token.start, message, len(token.text))

    def criterion(self) -> Criterion:
        subject = self._take()
        if subject is None or subject.kind != "word":
            raise self._error(subject, "a signal name such as p95, error_rate or health_failures")
        if not _SIGNAL.match(subject.text):
            raise self._at(subject, f"expected a signal name in lower case ({subject.text.lower()!r}), found {subject.text!r}")
        increase_token: _Token | None = None
        if (token := self._peek()) is not None and token.kind == "word" and token.text == "increase":
            increase_token = self._take()
        op = self._operator(increase_token is None)
        number, unit, relative, value_token = self._value()
        window, seconds, window_token = self._window()
        if (extra := self._peek()) is not None:
            raise self._trailing(extra, value_token, unit, relative, window)
        self._meaning(subject, increase_token, value_token, window_token, unit, relative, window)
        try:
            return Criterion(
                signal=subject.text, op=op, number=number, unit=unit, relative=relative,
                increase=increase_token is not None, window=window, seconds=seconds,
            )
        except ValueError as e:  # the checks above say each of these with a column
            raise CriterionError(self.text, 0, str(e), len(self.text)) from None

    def _operator(self, increase_allowed: bool) -> Op:
        token = self._take()
        if token is not None and token.kind == "op":
            spelled = _OP_SPELLINGS.get(token.text, token.text)
            if spelled in OPERATORS:
                return spelled
            raise self._at(token, f"expected <, <=, > or >=; {token.text!r} is not a comparison Conn makes")
        expected = "'increase' or an operator (<, <=, >, >=)" if increase_allowed else (
            "an operator (<, <=, >, >=)"
        )
        raise self._error(token, expected)

    def _value(self) -> tuple[float, Unit, bool, _Token]:
        token = self._take()
        if token is None or token.kind != "number":
            raise self._error(token, _VALUE_EXAMPLES)
        number = float(token.digits)
        if not math.isfinite(number):
            raise self._at(token, f"expected a number, found one too large to compare ({token.digits[:12]}…)")
        suffix = token.suffix
        if suffix in ("x", "×") or (not suffix and self._word_next(("x", "×"))):
            if not suffix:
                self._take()
            if number <= 0:
                raise self._at(token, f"expected a factor more than 0, found {token.digits!r}")
            follow = self._take()
            if follow is None or follow.kind != "word" or follow.text != "baseline":
                raise self._error(follow, f"'baseline' after {number_text(number)}x")
            return number, "", True, token
        if suffix and suffix not in (*TIME_UNITS, "%"):
            raise CriterionError(
                self.text, token.suffix_start,
                f"expected a unit: {_UNIT_WORDS}; {suffix!r} is not one", len(suffix),
            )
        return number, cast(Unit, suffix), False, token

    def _word_next(self, words: tuple[str, ...]) -> bool:
        token = self._peek()
        return token is not None and token.text in words

    def _window(self) -> tuple[WindowKind | None, float, _Token | None]:
        token = self._peek()
        if token is None or token.kind != "word" or token.text not in ("for", "within"):
            return None, 0.0, None
        self._take()
        duration = self._take()
        example = "5m" if token.text == "for" else "10m"
        if duration is None or duration.kind != "number":
            raise self._error(duration, f"a duration such as {example} after {token.text!r}")
        if not duration.suffix:
            raise self._at(duration, f"expected a duration with its unit ({duration.text}s, {duration.text}m)")
        if duration.suffix not in _DURATION_UNITS:
            raise CriterionError(
                self.text, duration.suffix_start,
                f"expected a duration unit (ms, s, m, h, d); {duration.suffix!r} is not one",
                len(duration.suffix),
            )
        try:
            seconds = 0.0 if duration.text.startswith("-") else parse_duration(duration.text)
        except ValueError:  # a number too large to be finite
            seconds = math.inf
        if seconds == math.inf:
            raise self._at(duration, "expected a duration, found one too long to count")
        if seconds <= 0:
            raise self._at(duration, f"expected a duration longer than 0, found {duration.text!r}")
        return cast(WindowKind, token.text), seconds, token

    def _trailing(
        self, extra: _Token, value: _Token, unit: Unit, relative: bool, window: WindowKind | None
    ) -> CriterionError:
        if not unit and not relative and window is None and extra.text in (*TIME_UNITS, "%"):
            return self._at(extra, f"expected the unit right after the number ({value.text}{extra.text})")
        if window is None:
            return self._error(extra, "'for', 'within' or the end of the criterion")
        return self._error(extra, "the end of the criterion")

    def _meaning(
        self, subject: _Token, increase: _Token | None, value: _Token, window_token: _Token | None,
        unit: Unit, relative: bool, window: WindowKind | None,
    ) -> None:
        name = subject.text
        if name == HEALTH_FAILURES and increase is not None:
            raise self._at(increase, "health_failures is already a count within the window: drop 'increase'")
        counts = name == HEALTH_FAILURES or increase is not None
        what = "a counter's increase" if increase is not None else "health_failures"
        if counts and window == "for":
            raise self._at(window_token, f"{what} is counted within a window: write 'within 5m', not 'for'")
        if counts and window is None:
            raise self._at(None, f"expected 'within' and a duration: {what} is counted within a window (add 'within 5m')")
        if window == "within" and not counts:
            raise self._at(
                window_token,
                f"'within' counts (health_failures, or {name} increase); for {name} held over time write 'for 5m'",
            )
        if relative:
            return
        problem = _unit_problem(name, unit, counts, increase is not None, self.units.get(name))
        if problem:
            if unit:
                raise CriterionError(self.text, value.suffix_start, problem, len(unit))
            raise self._at(value, problem)


def _unit_problem(signal: str, unit: Unit, counts: bool, increase: bool, configured: str | None) -> str:
    """What is wrong with ``unit`` on an absolute ``signal``, or "".

    Built-in signals' units are known; a named signal's is checked when ``configured`` is given.
    """
    if counts:
        return f"{'a counter increase' if increase else signal} is a count: no unit" if unit else ""
    expected = "ms" if signal in LATENCY_SIGNALS else "%" if signal in PERCENT_SIGNALS else configured
    if expected is None:
        return ""
    if expected == "ms" and unit not in TIME_UNITS:
        return f"{signal} is a latency: give ms, s or m (500ms, 2s)"
    if expected == "%" and unit != "%":
        return f"{signal} is a percentage: give % (0.1%, 70%)"
    if expected not in ("ms", "%") and unit:
        shown = f"in {expected}" if expected else "without a unit"
        return f"{signal} is {shown}: write a bare number"
    return ""
