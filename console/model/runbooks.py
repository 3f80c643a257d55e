"""Runbooks: Markdown an on-call engineer reads on GitHub and runs step by step in Conn.

A runbook is one ``.md`` file; its name is the file name without ``.md``. It
stays an ordinary document (GitHub renders it; Runme runs its code blocks),
and Conn reads structure from it with markdown-it-py's token tree, never
with patterns over the text:

* **Front matter** (between ``---`` lines; the subset in
  :mod:`console.model.runbook_front_matter`): ``title``, ``service``,
  ``severity``, ``alerts`` (the alerts the runbook is for: each item an
  Alertmanager selector, ``alertname="HighErrorRate"``, its matchers all
  holding — the syntax of :mod:`console.model.alerts`), ``vars``
  (``NAME: default``; an empty default means the operator is asked),
  ``secrets`` (names for ``conn secret set``). Runme's
  keys (``runme``, ``shell``, ``cwd``, ``category``, ``tag``,
  ``terminalRows``, ``skipPrompts``) are accepted and ignored; any other key
  is an error.
* **Steps**. Each ``##`` heading opens a section titled by it (``###`` and
  deeper are text within it). In document order, a section's fenced
  ``sh``/``bash``/``shell`` block becomes a *command* step (as Runme makes
  each block a cell), a run of ``- [ ]`` task items a *check* step (the
  operator ticks each one), and a section with neither is a *note* step
  (read, then continue). Steps are numbered from 1 through the whole file
  and all carry their section's title. Prose and warnings go to the next
  step of their section; what follows a section's last step is added to it.
  Blocks and checks before the first ``##`` are steps too, titled by the
  runbook; the prose there is the runbook's summary. Other code blocks
  (``json``, ``text``) are text of their step.
* **Attributes** in a shell block's info string, in either of Runme's forms:
  JSON (``sh {"name": "restart-api", "conn.timeout": "2m"}``) or the older
  key=value (``sh { name=restart-api conn.dangerous=true }``; values without
  spaces). Runme's own keys are Runme's business; Conn's take a ``conn.``
  prefix Runme ignores: ``conn.confirm`` (text the operator types before
  the step runs), ``conn.timeout`` (seconds, or "30s", "2m"),
  ``conn.dangerous`` (a danger mark, and the step's name must be typed
  unless ``conn.confirm`` says what), ``conn.rollback`` (the name of a
  later step to offer when this one fails: it may run at once, out of
  turn). ``name`` names a step; otherwise the
  slug of its title does ("restart-api", "restart-api-2").
* **Warnings**: ``> [!WARNING]`` and ``> [!CAUTION]`` blocks are danger
  banners, of the runbook (before the first step) or of a step.
* **Scripts** are run as written, with two of Runme's conventions: a
  leading ``$ `` prompt is dropped from a line, and the runner starts the
  script with ``set -e -o pipefail`` (see :mod:`console.actions.shell`).

The blocks are read by :mod:`console.model.runbook_markdown`.

**Variables.** ``${NAME}`` with NAME in capitals (``${SERVICE}``,
``${HEALTH_URL}``) is a runbook variable: from ``vars``, the incident
(``SERVICE``, ``INCIDENT``), the alert's labels (upper-cased:
``instance`` → ``${INSTANCE}``), or the operator. Everything else that
starts with ``$`` is the shell's (``$name``, ``${name}``, ``${N:-1}``,
``$(date)``), as are the environment's own names (``${HOME}``, ``${PATH}``,
see :data:`ENVIRONMENT_NAMES`). A script is not rewritten: each variable is
given to it as an environment variable and the shell expands ``${NAME}``,
so a value (an alert label, say) is never read as shell code.
:func:`resolve` fills the values into text for people (titles, the preview
of a command); inside single quotes the shell does not expand, so write
``"${SERVICE}"``. Secrets are never variables: ``secrets: [deploy_token]``
gives steps ``DEPLOY_TOKEN`` from the secret store, and ``${DEPLOY_TOKEN}``
stays as written in every preview.

:func:`parse_runbook` is pure (text in, :class:`Runbook` out) and raises
:class:`RunbookError` naming the line; reading the files is
:mod:`console.actions.runbook_files`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any

from console.model.alerts import Matcher, parse_matchers
from console.model.runbook_front_matter import Entry, FrontMatterError, parse_front_matter
from console.model.runbook_markdown import (
    SHELL_LANGUAGES,
    Draft,
    RunbookError,
    StepKind,
    join,
    read_document,
)
from console.model.sanitize import clean_text
from console.model.text import suggest
from console.model.units import format_duration, parse_duration

__all__ = [
    "CONN_ATTRIBUTES", "DEFAULT_TIMEOUT", "ENVIRONMENT_NAMES", "MAX_TIMEOUT", "SHELL_LANGUAGES",
    "BrokenRunbook", "MissingVariables", "Runbook", "RunbookError", "Step",
    "StepKind", "is_variable_name", "parse_runbook", "resolve", "run_values", "secret_variable", "variables_of",
]

CONN_ATTRIBUTES = ("conn.confirm", "conn.dangerous", "conn.rollback", "conn.timeout")
"""Conn's own block attributes; any other ``conn.`` key is an error."""
DEFAULT_TIMEOUT = 60.0
"""Seconds a step may run when it sets no ``conn.timeout``."""
MAX_TIMEOUT = 3600.0
"""The longest ``conn.timeout``: past an hour a step is a job, not an incident step."""
ENVIRONMENT_NAMES = frozenset({
    "PATH", "HOME", "LANG", "USER", "SHELL", "PWD", "OLDPWD", "IFS", "TMPDIR", "HOSTNAME",
    "RANDOM", "SECONDS", "LINENO", "PPID", "UID", "EUID", "PIPESTATUS", "FUNCNAME", "CONN_CONFIG",
})
"""Capitalised names the environment or the shell gives: never runbook variables
(as no name starting with ``BASH`` or ``CONN_`` is)."""

_RUNME_FRONT_MATTER = frozenset({"runme", "shell", "cwd", "category", "tag", "terminalRows", "skipPrompts"})
_CONN_FRONT_MATTER = ("title", "service", "severity", "alerts", "vars", "secrets")
_VARIABLE = re.compile(r"(?<!\\)\$\{([A-Z][A-Z0-9_]*)\}")
_NAME_LIMIT = 100


class MissingVariables(ValueError):
    """Text names variables that have no value; ``names`` lists them, sorted."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(sorted(set(names)))
        super().__init__(f"no value for {', '.join(self.names)}")


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a runbook: a command to run, checks to tick, or a note to read."""

    number: int
    """1-based, through the whole runbook."""
    title: str
    """The ``##`` heading of its section (the runbook's title before the first one)."""
    body: str
    """The prose that goes with the step, as plain text (paragraphs split by blank lines)."""
    kind: StepKind
    name: str
    """Runme's ``name``, or the slug of the title; unique within the runbook."""
    line: int
    """Where the step starts in the file: its code block, first check or heading."""
    checks: tuple[str, ...] = ()
    """A check step's items, each ticked by the operator."""
    command: str | None = None
    """A command step's script, as written (``$ `` prompts dropped)."""
    language: str | None = None
    confirm: str | None = None
    """``conn.confirm``: the text to type before the step runs (may hold ``${VARS}``)."""
    timeout: float = DEFAULT_TIMEOUT
    dangerous: bool = False
    rollback: str | None = None
    """``conn.rollback``: the name of a later command step to offer if this one fails."""
    warnings: tuple[str, ...] = ()
    """``> [!WARNING]`` banners of this step."""

    @property
    def confirmation(self) -> str | None:
        """What the operator types before the step runs: ``conn.confirm``, else the name of a
        dangerous step, else nothing (may hold ``${VARS}``: :func:`resolve` it)."""
        if self.confirm is not None:
            return self.confirm
        return self.name if self.dangerous else None


@dataclass(frozen=True)
class Runbook:
    """A parsed runbook file."""

    name: str
    path: PurePath | None
    title: str
    service: str | None
    """The service it is for (front matter); None: any."""
    severity: str | None
    alerts: tuple[str, ...]
    """Alert selectors as written (``alertname="HighErrorRate"``); see :meth:`matches`."""
    vars: Mapping[str, str]
    """Declared variables and their defaults ("" means: ask the operator)."""
    secrets: tuple[str, ...]
    warnings: tuple[str, ...]
    """Banners for the whole runbook."""
    steps: tuple[Step, ...]
    version: str
    """SHA-256 of the file's bytes: a run records it, so an edited file is noticed."""
    summary: str = ""
    """The prose before the first step."""
    selectors: tuple[tuple[Matcher, ...], ...] = field(default=(), repr=False)
    """``alerts`` parsed: the runbook is for an alert that every matcher of one selector matches."""

    def step(self, key: int | str) -> Step:
        """A step by number (1-based) or name; KeyError with the known names otherwise."""
        for step in self.steps:
            if step.number == key or step.name == key:
                return step
        if isinstance(key, int):
            raise KeyError(f"{self.name} has no step {key} (it has {len(self.steps)})")
        raise KeyError(f"{self.name} has no step named {key!r}.{suggest(key, [s.name for s in self.steps])}")

    @property
    def secret_variables(self) -> dict[str, str]:
        """Environment name → secret name (``DEPLOY_TOKEN`` → ``deploy_token``)."""
        return {secret_variable(name): name for name in self.secrets}

    def variables(self) -> frozenset[str]:
        """Every runbook variable its text uses (secrets excluded), plus the declared ones."""
        names: set[str] = set(self.vars)
        names.update(_names(self.title, self.summary, *self.warnings))
        for step in self.steps:
            names |= variables_of(step)
        return frozenset(names - set(self.secret_variables))

    def missing_variables(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """The variables the operator must be asked for: used, and with no value in
        ``values`` or a declared default (an empty text is no value)."""
        known = {name for name, value in {**self.vars, **values}.items() if value}
        return tuple(sorted(name for name in self.variables() if name not in known))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` is one this runbook is for."""
        return any(all(m.matches(labels) for m in selector) for selector in self.selectors)


@dataclass(frozen=True)
class BrokenRunbook:
    """A runbook file that could not be used, listed with why (the others still load)."""

    name: str
    path: PurePath | None
    error: str
    """The problem, in words (without the line)."""
    line: int | None

    def describe(self) -> str:
        """"name.md line 12: the code block opened here is never closed"."""
        where = self.path.name if self.path else f"{self.name}.md"
        return f"{where} line {self.line}: {self.error}" if self.line else f"{where}: {self.error}"


# --- variables -----------------------------------------------------------------------------


def secret_variable(secret: str) -> str:
    """The environment name a secret is given to steps under: ``deploy-token`` → ``DEPLOY_TOKEN``."""
    return "".join(char if char.isascii() and char.isalnum() else "_" for char in secret).upper()


def is_variable_name(name: str) -> bool:
    """Capitals, digits and '_', starting with a capital; not one of the environment's."""
    return (
        _VARIABLE.fullmatch("${" + name + "}") is not None
        and name not in ENVIRONMENT_NAMES and not name.startswith(("BASH", "CONN_"))
    )


def _names(*texts: str | None) -> set[str]:
    found: set[str] = set()
    for text in texts:
        if text:
            found.update(name for name in _VARIABLE.findall(text) if is_variable_name(name))
    return found


def variables_of(step: Step) -> set[str]:
    """The runbook variables a step's text uses: title, prose, warnings, checks, script, confirmation."""
    return _names(step.title, step.body, step.command, step.confirm, *step.warnings, *step.checks)


def resolve(text: str, values: Mapping[str, str], *, leave: Iterable[str] = ()) -> str:
    """``text`` with each ``${NAME}`` replaced by its value, for people to read.

    Args:
        text: a title, check, confirmation or script.
        values: variable → value (never a secret).
        leave: names kept as written (the runbook's secret variables).

    Raises:
        MissingVariables: listing every variable with no value.
    """
    kept = set(leave)
    missing = {n for n in _names(text) if n not in values and n not in kept}
    if missing:
        raise MissingVariables(missing)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in kept or not is_variable_name(name):
            return match.group(0)
        return values[name]

    return _VARIABLE.sub(fill, text)


def run_values(
    runbook: Runbook,
    *,
    service: str | None = None,
    incident: str | None = None,
    labels: Mapping[str, str] | None = None,
    given: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The values a run starts with, each source over the one before it:
    declared defaults, the alert's labels (upper-cased), the incident
    (``SERVICE``, ``INCIDENT``), then ``given`` (the caller's ``HEALTH_URL``,
    ``ROLLOUT``, what the operator typed).

    Label values come from outside and are cleaned of control characters;
    names that cannot be variables (and the secrets' names) are dropped.
    """
    values = {name: value for name, value in runbook.vars.items() if value}
    for label, value in (labels or {}).items():
        name = label.upper()
        if is_variable_name(name):
            values[name] = clean_text(value, 1024)
    if service is not None:
        values["SERVICE"] = service
    if incident is not None:
        values["INCIDENT"] = incident
    values.update(given or {})
    secret = runbook.secret_variables
    return {name: value for name, value in values.items() if is_variable_name(name) and name not in secret}


# --- parsing -------------------------------------------------------------------------------


def parse_runbook(name: str, text: str, path: PurePath | None = None) -> Runbook:
    """Read a runbook from its Markdown.

    Args:
        name: the runbook's name (its file name without ``.md``).
        text: the file's contents.
        path: where it was read from, for messages.

    Raises:
        RunbookError: naming the line: broken front matter, an unclosed code
            block, bad attributes (JSON, an unknown ``conn.`` key, a bad
            timeout), a ``conn.rollback`` that names no step, a duplicate
            step name, a bad alert matcher.
    """
    version = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    document = read_document(text.replace("\r\n", "\n").replace("\r", "\n"))
    front: dict[str, Entry] = {}
    if document.front_matter is not None:
        front = _front_matter(document.front_matter)
    meta = _meta(front)
    title = meta.pop("title", None) or document.heading or name
    steps = _named(document.drafts, title)
    _check_rollbacks(steps)
    alerts: tuple[str, ...] = meta.get("alerts", ())
    return Runbook(
        name=name, path=path, title=title, service=meta.get("service"),
        severity=meta.get("severity"), alerts=alerts, vars=meta.get("vars", {}),
        secrets=meta.get("secrets", ()), warnings=document.warnings,
        steps=steps, version=version, summary=document.summary,
        selectors=tuple(_selector(item, front["alerts"].line) for item in alerts),
    )


def _selector(text: str, line: int) -> tuple[Matcher, ...]:
    try:
        selector = parse_matchers(text)
    except ValueError as e:
        raise RunbookError(f"front matter: alerts: {e}", line) from None
    if not selector:
        raise RunbookError(f"front matter: alerts: {text!r} selects every alert; name one", line)
    return selector


def _front_matter(text: str) -> dict[str, Entry]:
    try:
        return parse_front_matter(text, first_line=2, opaque=_RUNME_FRONT_MATTER)
    except FrontMatterError as e:
        raise RunbookError(f"front matter: {e.message}", e.line) from None


def _meta(front: dict[str, Entry]) -> dict[str, Any]:
    """The front matter's keys checked and typed: what :class:`Runbook` takes."""
    meta: dict[str, Any] = {}
    for key, entry in front.items():
        if key in _RUNME_FRONT_MATTER:
            continue
        value, line = entry.value, entry.line
        if key not in _CONN_FRONT_MATTER:
            known = ", ".join(_CONN_FRONT_MATTER)
            raise RunbookError(
                f"front matter: unknown key {key!r}.{suggest(key, _CONN_FRONT_MATTER)} "
                f"Runbooks take {known} (and Runme's keys)", line,
            )
        if key in ("title", "service", "severity"):
            if isinstance(value, tuple | dict):
                raise RunbookError(f"front matter: {key!r} takes one value, not a list or mapping", line)
            if value is not None:
                meta[key] = _line_text(value, line, key)
        elif key in ("alerts", "secrets"):
            items = (value,) if isinstance(value, str) else value or ()
            if isinstance(items, dict):
                raise RunbookError(f"front matter: {key!r} takes a list ([a, b] or '- item' lines)", line)
            meta[key] = tuple(_line_text(item, line, key) for item in items)
            if key == "secrets":
                _check_secrets(meta[key], line)
        else:  # vars
            if isinstance(value, str | tuple):
                raise RunbookError(
                    "front matter: 'vars' takes a mapping: one indented 'NAME: default' per line", line
                )
            meta[key] = _declared(value or {}, line)
    return meta


def _line_text(value: str, line: int, key: str) -> str:
    if not value.isprintable() or not value.strip():
        raise RunbookError(f"front matter: {key!r} must be text on one line, without control characters", line)
    return value.strip()


def _declared(values: dict[str, str], line: int) -> dict[str, str]:
    for name, value in values.items():
        if not is_variable_name(name):
            raise RunbookError(
                f"front matter: {name!r} cannot be a variable: use capitals, digits and '_', "
                "starting with a capital (and not a name the environment sets, such as PATH)", line,
            )
        if not value.isprintable():
            raise RunbookError(f"front matter: the default of {name} has control characters", line)
    return dict(values)


def _check_secrets(names: tuple[str, ...], line: int) -> None:
    seen: dict[str, str] = {}
    for name in names:
        variable = secret_variable(name)
        if not name[:1].isalpha() or len(name) > 64:
            raise RunbookError(
                f"front matter: {name!r} is not a secret name (the name given to `conn secret set`)", line
            )
        if variable in seen:
            raise RunbookError(
                f"front matter: secrets {seen[variable]!r} and {name!r} would both be {variable}", line
            )
        if not is_variable_name(variable):
            raise RunbookError(
                f"front matter: secret {name!r} would be given as {variable}, a name the environment sets", line
            )
        seen[variable] = name


# --- steps: attributes, names, rollbacks ---------------------------------------------------


def _named(drafts: tuple[Draft, ...], title: str) -> tuple[Step, ...]:
    """Number the steps, read their attributes, and give each a unique name: its own
    (Runme's ``name``), else the slug of its title, suffixed -2, -3 when taken."""
    explicit = [_attribute_name(draft) for draft in drafts]
    taken: dict[str, int] = {}
    for draft, name in zip(drafts, explicit, strict=True):
        if name is not None:
            if name in taken:
                raise RunbookError(
                    f"step name {name!r} is already used by the step on line {taken[name]}", draft.line
                )
            taken[name] = draft.line
    steps = []
    for number, (draft, name) in enumerate(zip(drafts, explicit, strict=True), start=1):
        step_title = draft.title or title
        if name is None:
            base = _slug(step_title) or f"step-{number}"
            name, suffix = base, 2
            while name in taken:
                name, suffix = f"{base}-{suffix}", suffix + 1
            taken[name] = draft.line
        step = Step(
            number=number, title=step_title, body=join(draft.body), kind=draft.kind, name=name,
            line=draft.line, checks=draft.checks, command=draft.command, language=draft.language,
            warnings=tuple(draft.warnings),
        )
        steps.append(_with_attributes(step, draft.attributes))
    return tuple(steps)


def _attribute_name(draft: Draft) -> str | None:
    value = draft.attributes.get("name")
    if value is None:
        return None
    name = value if isinstance(value, str) else json.dumps(value)
    if not name.strip() or len(name) > _NAME_LIMIT or not name.isprintable() or any(c.isspace() for c in name):
        raise RunbookError(
            f"name {name!r} cannot name a step (one word, at most {_NAME_LIMIT} characters)", draft.line
        )
    return name


def _with_attributes(step: Step, attributes: Mapping[str, Any]) -> Step:
    line = step.line
    for key in attributes:
        if key == "conn" or (key.startswith("conn.") and key not in CONN_ATTRIBUTES):
            raise RunbookError(
                f"unknown attribute {key!r}.{suggest(key, CONN_ATTRIBUTES)} "
                f"Conn's attributes are {', '.join(CONN_ATTRIBUTES)}", line,
            )
    changes: dict[str, Any] = {}
    if "conn.confirm" in attributes:
        text = attributes["conn.confirm"]
        if not isinstance(text, str) or not text.strip() or not text.isprintable():
            raise RunbookError("conn.confirm takes the text to type, on one line", line)
        changes["confirm"] = text
    if "conn.timeout" in attributes:
        changes["timeout"] = _timeout(attributes["conn.timeout"], line)
    if "conn.dangerous" in attributes:
        changes["dangerous"] = _flag(attributes["conn.dangerous"], "conn.dangerous", line)
    if "conn.rollback" in attributes:
        target = attributes["conn.rollback"]
        if not isinstance(target, str) or not target.strip():
            raise RunbookError("conn.rollback takes the name of a step", line)
        changes["rollback"] = target.strip()
    return replace(step, **changes) if changes else step


def _timeout(value: Any, line: int) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise RunbookError(f"conn.timeout: {e}", line) from None
    if not 0 < seconds <= MAX_TIMEOUT:
        raise RunbookError(
            f"conn.timeout must be more than 0 and at most {format_duration(MAX_TIMEOUT)}, not {value!r}", line
        )
    return seconds


def _flag(value: Any, key: str, line: int) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("", "true", "yes"):
        return True  # a bare key (key=value form) says yes
    if isinstance(value, str) and value.lower() in ("false", "no"):
        return False
    raise RunbookError(f"{key} takes true or false, not {value!r}", line)


def _check_rollbacks(steps: tuple[Step, ...]) -> None:
    """``conn.rollback`` names a later command step: one that has not run when this one fails."""
    by_name = {step.name: step for step in steps}
    for step in steps:
        if step.rollback is None:
            continue
        target = by_name.get(step.rollback)
        if target is None:
            raise RunbookError(
                f"conn.rollback names no step: {step.rollback!r}.{suggest(step.rollback, by_name)}", step.line
            )
        if target.number <= step.number or target.kind != "command":
            what = (
                "itself" if target is step else f"a {target.kind} step" if target.kind != "command"
                else f"step {target.number}, which comes before it"
            )
            raise RunbookError(f"conn.rollback must name a later command step, not {what}", step.line)


def _slug(title: str) -> str:
    words = "".join(char.lower() if char.isalnum() else " " for char in title).split()
    return "-".join(words)[:_NAME_LIMIT].strip("-")
