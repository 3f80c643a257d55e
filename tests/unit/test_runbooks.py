"""Runbooks: the Markdown format, Runme's attribute forms, broken files with the line at fault,
variables, the shipped runbooks, and reading a folder where some files are broken."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.actions.runbook_files import (
    MAX_RUNBOOK_BYTES,
    demo_runbooks_folder,
    load_runbooks,
    read_runbook,
)
from console.model.runbook_front_matter import FrontMatterError, parse_front_matter
from console.model.runbooks import (
    DEFAULT_TIMEOUT,
    MissingVariables,
    Runbook,
    RunbookError,
    Step,
    parse_runbook,
    resolve,
    run_values,
    secret_variable,
    variables_of,
)

FENCE = "```"


def steps_of(text: str) -> list[tuple[int, str, str, str]]:
    """(number, kind, name, title) of each step."""
    return [(s.number, s.kind, s.name, s.title) for s in parse_runbook("t", text).steps]


def error_of(text: str) -> str:
    with pytest.raises(RunbookError) as caught:
        parse_runbook("t", text)
    return str(caught.value)


# --- the shipped runbooks --------------------------------------------------------------------


def shipped() -> dict[str, Runbook]:
    runbooks, broken = load_runbooks([demo_runbooks_folder()])
    assert broken == []
    return {runbook.name: runbook for runbook in runbooks}


def test_the_shipped_runbooks_load_with_their_steps_in_order() -> None:
    books = shipped()
    assert sorted(books) == ["high-error-rate", "service-outage", "slow-responses"]
    assert [(s.kind, s.name) for s in books["high-error-rate"].steps] == [
        ("command", "error-rates"), ("command", "recent-changes"), ("check", "look-for-a-recent-change"),
        ("command", "rollback"), ("command", "verify-error-rate"), ("check", "verify-the-error-rate-falls"),
    ]
    assert [(s.kind, s.name) for s in books["slow-responses"].steps] == [
        ("command", "compare-baseline"), ("command", "service-health"), ("check", "check-the-cache"),
        ("command", "hold-rollout"), ("command", "verify-p95"), ("command", "rollback"),
    ]
    assert [(s.kind, s.name) for s in books["service-outage"].steps] == [
        ("command", "health-check"), ("command", "rollback"), ("command", "verify-health"),
        ("check", "notify"),
    ]


def test_the_shipped_runbooks_carry_their_front_matter_and_banners() -> None:
    books = shipped()
    errors = books["high-error-rate"]
    assert (errors.title, errors.severity, errors.alerts) == (
        "High error rate", "SEV2",
        ('alertname="HighErrorRate"', 'alertname="ConnAutoRollback", signal=~"error_rate|probe_errors"'),
    )
    # An incident an automatic rollback opened offers the runbook for its criterion's signal.
    assert errors.matches({"alertname": "ConnAutoRollback", "signal": "error_rate", "rollout": "checkout"})
    assert not books["slow-responses"].matches({"alertname": "ConnAutoRollback", "signal": "error_rate"})
    assert books["slow-responses"].matches({"alertname": "ConnAutoRollback", "signal": "p95"})
    assert errors.matches({"alertname": "HighErrorRate", "service": "checkout"})
    assert not errors.matches({"alertname": "SlowResponses"})
    assert books["slow-responses"].matches({"alertname": "SlowResponses"})
    assert books["service-outage"].matches({"alertname": "ServiceDown"})
    assert errors.warnings[0].startswith("Do not restart ${SERVICE}")
    assert "More than 1 % of the requests" in errors.summary
    assert books["slow-responses"].vars == {"ROLLOUT": "", "BASELINE": "checkout"}


def test_every_shipped_rollback_is_dangerous_and_one_step_asks_for_typed_text() -> None:
    steps = [step for book in shipped().values() for step in book.steps]
    rollbacks = [s for s in steps if s.command and "conn rollback" in s.command]
    assert len(rollbacks) == 3
    assert all(s.dangerous and s.warnings for s in rollbacks)
    outage = shipped()["service-outage"]
    assert outage.step("rollback").confirmation == "roll back ${ROLLOUT}"
    assert outage.step("health-check").rollback == "rollback"
    assert shipped()["slow-responses"].step("hold-rollout").confirmation == "hold ${ROLLOUT}"
    assert shipped()["high-error-rate"].step("rollback").confirmation == "rollback"
    assert any(s.kind == "check" for s in steps)


def test_the_shipped_runbooks_need_only_what_conn_provides() -> None:
    for book in shipped().values():
        assert book.variables() <= {"SERVICE", "INCIDENT", "HEALTH_URL", "ROLLOUT", "BASELINE"}, book.name
        given = {"SERVICE": "checkout", "INCIDENT": "7", "HEALTH_URL": "http://h", "ROLLOUT": "checkout"}
        assert book.missing_variables(given) == ()
        assert book.missing_variables({}) == tuple(sorted(book.variables() - {"BASELINE"}))


# --- structure -------------------------------------------------------------------------------


def test_each_shell_block_is_a_step_titled_by_its_heading_checks_and_notes_too() -> None:
    text = f"""# Restart the API

Read this first.

## Look

Prose for the first block.

{FENCE}sh
echo one
{FENCE}

Prose for the second block.

{FENCE}bash
echo two
{FENCE}

Trailing prose goes to the last step.

- [ ] ticked by a person
- [x] also a check
- a plain item

## Just read

Nothing to run here.

### A subheading is text

## Again

{FENCE}shell
echo three
{FENCE}
"""
    book = parse_runbook("restart", text)
    assert book.title == "Restart the API"
    assert book.summary == "Read this first."
    assert [(s.number, s.kind, s.name, s.title) for s in book.steps] == [
        (1, "command", "look", "Look"), (2, "command", "look-2", "Look"), (3, "check", "look-3", "Look"),
        (4, "note", "just-read", "Just read"), (5, "command", "again", "Again"),
    ]
    first, second, checks, note, _ = book.steps
    assert (first.body, first.command, first.language, first.line) == (
        "Prose for the first block.", "echo one", "sh", 9
    )
    assert second.body == "Prose for the second block."
    assert checks.checks == ("ticked by a person", "also a check")
    assert checks.body == "Trailing prose goes to the last step.\n\n- a plain item"
    assert note.body == "Nothing to run here.\n\nA subheading is text"
    assert first.timeout == DEFAULT_TIMEOUT and not first.dangerous


def test_blocks_before_the_first_heading_and_inside_lists_are_steps() -> None:
    text = f"""Intro.

{FENCE}sh
uptime
{FENCE}

## Restart

1. Drain the node:
   {FENCE}sh {{"name": "drain"}}
   echo drain
   {FENCE}
2. Then look:
   {FENCE}json
   {{"not": "run"}}
   {FENCE}
"""
    book = parse_runbook("nodes", text)
    assert [(s.kind, s.name, s.title) for s in book.steps] == [
        ("command", "nodes", "nodes"), ("command", "drain", "Restart")
    ]
    assert book.summary == "Intro."
    assert book.steps[1].body == '1. Drain the node:\n\n2. Then look:\n\n{"not": "run"}'


def test_warnings_are_banners_of_the_runbook_or_of_the_next_step() -> None:
    text = f"""# T

> [!WARNING]
> Whole runbook.

## Roll back

> [!CAUTION]
> This one **hurts**.

> [!NOTE]
> Only a note.

> A plain quote.

{FENCE}sh
echo
{FENCE}
"""
    book = parse_runbook("t", text)
    assert book.warnings == ("Whole runbook.",)
    assert book.steps[0].warnings == ("This one hurts.",)
    assert book.steps[0].body == "Note: Only a note.\n\n> A plain quote."


def test_text_from_the_file_is_made_safe_to_show_and_html_stays_text() -> None:
    text = "# Title \x1b]8;;http://evil\x07here\n\n<b>bold</b> and `code` and [docs](https://d)\n\n## S\n\nx\n"
    book = parse_runbook("t", text)
    assert book.title == "Title here"
    assert book.summary == "<b>bold</b> and `code` and docs (https://d)"


def test_the_title_comes_from_front_matter_then_the_first_heading_then_the_name() -> None:
    assert parse_runbook("n", "---\ntitle: From front\n---\n# Heading\n").title == "From front"
    assert parse_runbook("n", "# Heading\n\n# Second\n").title == "Heading"
    assert parse_runbook("n", "no heading\n").title == "n"


def test_the_version_is_the_sha256_of_the_file() -> None:
    text = "# T\n\n## S\n"
    assert parse_runbook("t", text).version == hashlib.sha256(text.encode()).hexdigest()


# --- Runme documents -------------------------------------------------------------------------


RUNME_JSON = f"""---
runme:
  id: 01HF7BT3HD84GWTQB9008APC3C
  version: v3
shell: bash
skipPrompts: true
---

# Examples

## Shell

{FENCE}sh {{"id":"01HF7BT3HD84GWTQB8ZCWPH803"}}
$ echo "Hello, runme!"
{FENCE}

With a name:

{FENCE}sh {{"id":"01HF7BT3HD84GWTQB8ZEBC4E7R","name":"echo","interactive":"false"}}
$ echo "1"
$ echo "2"
{FENCE}

{FENCE}js {{"id":"01HF7BT3HD84GWTQB8ZPB8TH53","name":"hello-js"}}
console.log("Hello World!");
{FENCE}

{FENCE}sh {{"id":"01HF7BT3HD84GWTQB8ZGWMJJE6","name":"restart","conn.dangerous":"true","conn.timeout":"2m","conn.confirm":"restart api"}}
echo restart
{FENCE}
"""

RUNME_KEY_VALUES = f"""## Deploy

{FENCE}sh {{ name=deploy interactive=false conn.timeout=90s conn.rollback=undeploy }}
echo deploy
{FENCE}

## Undeploy

{FENCE}bash {{ name=undeploy conn.dangerous }}
echo undeploy
{FENCE}
"""


def test_a_runme_document_with_json_attributes() -> None:
    book = parse_runbook("examples", RUNME_JSON)
    assert [(s.name, s.command) for s in book.steps] == [
        ("shell", 'echo "Hello, runme!"'), ("echo", 'echo "1"\necho "2"'),
        ("restart", "echo restart"),
    ]
    restart = book.step("restart")
    assert (restart.dangerous, restart.timeout, restart.confirmation) == (True, 120.0, "restart api")
    assert restart.body == 'console.log("Hello World!");'  # a js block is text here


def test_a_runme_document_with_key_value_attributes() -> None:
    book = parse_runbook("deploy", RUNME_KEY_VALUES)
    deploy, undeploy = book.steps
    assert (deploy.name, deploy.timeout, deploy.rollback, deploy.dangerous) == ("deploy", 90.0, "undeploy", False)
    assert (undeploy.name, undeploy.dangerous, undeploy.confirmation) == ("undeploy", True, "undeploy")


def test_a_runme_document_without_attributes_or_headings() -> None:
    assert steps_of(f"{FENCE}sh\necho \"file\"\n{FENCE}\n") == [(1, "command", "t", "t")]
    assert steps_of(f"{FENCE}sh {{}}\necho\n{FENCE}\n")[0][1] == "command"


# --- broken runbooks: golden errors naming the line --------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("---\ntitle: x\n\n## Step\n",
         "line 1: the front matter opened here is never closed (end it with a line of ---)"),
        ("---\ntitle: x\nvars:\n\tA: b\n---\n",
         "line 4: front matter: indent with spaces, not tabs"),
        ("---\nvars: {A: b}\n---\n",
         "line 2: front matter: flow mappings ({a: b}) are not supported: write one 'name: value' per line"),
        ("---\ntitle: x\nservce: checkout\n---\n",
         "line 3: front matter: unknown key 'servce'. Did you mean 'service'? Runbooks take title, "
         "service, severity, alerts, vars, secrets (and Runme's keys)"),
        ('---\ntitle: "unclosed\n---\n',
         "line 2: front matter: the quoted text '\"unclosed' is not closed (quotes must close on the same line)"),
        ("---\nvars:\n  path: x\n---\n",
         "line 2: front matter: 'path' cannot be a variable: use capitals, digits and '_', starting with "
         "a capital (and not a name the environment sets, such as PATH)"),
        ('---\nalerts: [alertname=~"("]\n---\n',
         "line 2: front matter: alerts: bad selector 'alertname=~\"(\"' at column 12: invalid regular "
         "expression '(': missing ), unterminated subpattern at position 0"),
        ("# T\n\n## Restart\n\n```sh\necho hi\n\n## Next\n",
         "line 5: the code block opened here is never closed (end it with a line of ```)"),
        ('## S\n\n```sh {"name": "a", "conn.timout": "2m"}\necho\n```\n',
         "line 3: unknown attribute 'conn.timout'. Did you mean 'conn.timeout'? Conn's attributes are "
         "conn.confirm, conn.dangerous, conn.rollback, conn.timeout"),
        ('## S\n\n```sh {"name": "a",}\necho\n```\n',
         "line 3: the attributes are not valid JSON: Expecting property name enclosed in double quotes "
         "at character 14 of '{\"name\": \"a\",}'"),
        ("## S\n\n```sh {name: a}\necho\n```\n",
         "line 3: the attributes are neither JSON ({\"name\": \"x\"}) nor key=value ({ name=x }): '{name: a}'"),
        ('## S\n\n```sh {"conn.rollback": "undo"}\necho\n```\n\n## Undo it\n\n```sh {"name": "undo-it"}\necho\n```\n',
         "line 3: conn.rollback names no step: 'undo'. Did you mean 'undo-it'?"),
        ('## A\n\n```sh {"name": "a"}\necho\n```\n\n## B\n\n```sh {"conn.rollback": "a"}\necho\n```\n',
         "line 9: conn.rollback must name a later command step, not step 1, which comes before it"),
        ('## A\n\n```sh {"name": "a"}\necho\n```\n\n## B\n\n```sh { name=a }\necho\n```\n',
         "line 9: step name 'a' is already used by the step on line 3"),
        ('## A\n\n```sh {"conn.timeout": "soon"}\necho\n```\n',
         'line 3: conn.timeout: \'soon\' is not a duration (examples: "500ms", "2s", "5m", "1h")'),
        ('## A\n\n```sh {"conn.timeout": 0}\necho\n```\n',
         "line 3: conn.timeout must be more than 0 and at most 1h, not 0"),
        ('## A\n\n```sh {"conn.dangerous": "maybe"}\necho\n```\n',
         "line 3: conn.dangerous takes true or false, not 'maybe'"),
        ('## A\n\n```json {"conn.dangerous": true}\n{}\n```\n',
         "line 3: conn. attributes apply to sh and bash blocks only, not to a 'json' block"),
        ("## A\n\n```sh title=x\necho\n```\n",
         "line 3: after the language, Conn reads only attributes in braces ({\"name\": \"restart-api\"}), "
         "not 'title=x'"),
        ("## A\n\n```sh\necho \x1b[31m\n```\n",
         "line 4: a control character (0x1b) in the code block; write it as an escape such as \\e or "
         "\\x1b so what is shown is what runs"),
        ("## A\n\n```sh\n\n```\n", "line 3: the code block is empty"),
        ("## A\n\n- [ ]\n", "line 3: a check item has no text"),
    ],
    ids=[
        "front-matter-unclosed", "front-matter-tab", "front-matter-flow-mapping", "front-matter-unknown-key",
        "front-matter-unclosed-quote", "front-matter-bad-variable", "front-matter-bad-matcher",
        "unclosed-fence", "unknown-conn-key", "bad-json", "neither-json-nor-key-value",
        "rollback-names-no-step", "rollback-names-an-earlier-step", "duplicate-name", "bad-timeout",
        "zero-timeout", "bad-dangerous", "conn-key-on-json-block", "words-after-language",
        "control-character", "empty-block", "empty-check",
    ],
)
def test_a_broken_runbook_is_refused_naming_the_line(text: str, error: str) -> None:
    assert error_of(text) == error


def test_a_fence_closed_by_the_end_of_its_list_is_unclosed() -> None:
    text = "## A\n\n- item\n  ```sh\n  echo\nnot indented\n"
    assert error_of(text).startswith("line 4: the code block opened here is never closed")


def test_closing_fences_may_be_longer_or_tildes_or_quoted() -> None:
    assert steps_of("## A\n\n~~~~sh\necho\n~~~~~\n")[0][1] == "command"
    assert parse_runbook("t", "## A\n\n> ```sh\n> echo\n> ```\n").steps[0].kind == "note"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("#-`[]{}\":=> \n~xsh!$cno.ad")), max_size=200))
def test_any_text_is_a_runbook_or_a_runbook_error(text: str) -> None:
    try:
        book = parse_runbook("t", text)
    except RunbookError as e:
        line = e.line
        book = None
    if book is None:
        assert line is None or 1 <= line <= text.count("\n") + 2
        return
    assert [step.number for step in book.steps] == list(range(1, len(book.steps) + 1))
    assert len({step.name for step in book.steps}) == len(book.steps)


# --- front matter subset ---------------------------------------------------------------------


def test_the_front_matter_subset() -> None:
    text = (
        "title: 'It''s down'   # a comment\n"
        'alerts: [alertname="A, B", \'severity="page"\', ]\n'
        "secrets:\n  - deploy_token\n  - \"api-key\"\n"
        "vars:\n  ROLLOUT: checkout\n  EMPTY: \"\"\n"
        "runme:\n  id: 01H\n  document:\n    relativePath: x.md\n"
        "service: ~\n"
    )
    entries = parse_front_matter(text, first_line=2, opaque=frozenset({"runme"}))
    assert {key: entry.value for key, entry in entries.items()} == {
        "title": "It's down", "alerts": ('alertname="A, B"', 'severity="page"'),
        "secrets": ("deploy_token", "api-key"), "vars": {"ROLLOUT": "checkout", "EMPTY": ""},
        "runme": None, "service": None,
    }
    assert entries["vars"].line == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\na: 2", "line 3: 'a' is given twice (first on line 2)"),
        ("a:\n  - x\n  y: z", "line 4: 'a' mixes list items and 'name: value' lines"),
        ("a:\n  - k: v", "line 3: lists of mappings are not supported (under 'a'); quote the item if it is text"),
        ("a: |\n  text", "line 2: block scalars (| and >) are not supported: write the text on one line"),
        ("a: &anchor x", "line 2: anchors, aliases and tags (&, *, !) are not supported"),
        ("a:\n  b:\n    c: d",
         'line 3: only one level of nesting is supported: give \'b\' a value on its line (write "" for an empty one)'),
        ("a:\n  - x\n    - y", "line 4: only one level of nesting is supported, indented alike (under 'a')"),
        ("a: x\n  - y", "line 3: 'a' has a value on its own line and indented lines under it; give one or the other"),
        ("a: [x, [y]]", "line 2: nested lists are not supported"),
        ("a: [x, y", "line 2: the list '[x, y' is not closed with ']' (a flow list stays on one line)"),
        ("  a: b", "line 2: unexpected indentation: 'a: b' is not under a key that takes a list or mapping"),
        ("just text", "line 2: expected 'key: value', found 'just text'"),
    ],
)
def test_front_matter_outside_the_subset_names_the_line(text: str, message: str) -> None:
    with pytest.raises(FrontMatterError) as caught:
        parse_front_matter(text, first_line=2)
    assert str(caught.value) == message


# --- variables -------------------------------------------------------------------------------


def step_with(command: str, **fields: str) -> Step:
    return Step(number=1, title=fields.get("title", "t"), body=fields.get("body", ""), kind="command",
                name="s", line=1, command=command, confirm=fields.get("confirm"))


def test_runbook_variables_are_capitalised_braces_and_the_shell_keeps_the_rest() -> None:
    step = step_with(
        'curl "${HEALTH_URL}" $SERVICE ${name} ${N:-1} $(date) \\${ESCAPED} ${HOME} ${BASH_VERSION}',
        title="Roll back ${ROLLOUT}", confirm="roll back ${ROLLOUT} now",
        body="for ${INCIDENT}",
    )
    assert variables_of(step) == {"HEALTH_URL", "ROLLOUT", "INCIDENT"}


def test_resolve_fills_values_leaves_secrets_and_lists_every_missing_variable() -> None:
    text = 'curl -H "Authorization: ${DEPLOY_TOKEN}" "${HEALTH_URL}" # ${SERVICE} ${name} $HOME'
    filled = resolve(text, {"HEALTH_URL": "http://h", "SERVICE": "checkout"}, leave={"DEPLOY_TOKEN"})
    assert filled == 'curl -H "Authorization: ${DEPLOY_TOKEN}" "http://h" # checkout ${name} $HOME'
    with pytest.raises(MissingVariables) as caught:
        resolve("${B} ${A} ${B}", {})
    assert str(caught.value) == "no value for A, B"
    assert caught.value.names == ("A", "B")


def test_run_values_from_defaults_labels_incident_and_the_caller_in_that_order() -> None:
    book = parse_runbook(
        "t",
        "---\nvars:\n  ROLLOUT: default\n  REASON: \"\"\n  WINDOW: 5m\nsecrets: [deploy-token]\n---\n"
        "## S\n\n```sh\necho ${ROLLOUT} ${REASON} ${INSTANCE} ${DEPLOY_TOKEN}\n```\n",
    )
    values = run_values(
        book, service="checkout", incident="42",
        labels={"instance": "10.0.0.1:9000\x1b[2J", "rollout": "from-label", "PATH": "/evil", "bad-name": "x",
                "deploy_token": "leak"},
        given={"WINDOW": "10m"},
    )
    assert values == {
        "ROLLOUT": "from-label", "WINDOW": "10m", "INSTANCE": "10.0.0.1:9000", "SERVICE": "checkout",
        "INCIDENT": "42",
    }
    assert book.secret_variables == {"DEPLOY_TOKEN": "deploy-token"}
    assert book.missing_variables(values) == ("REASON",)
    assert secret_variable("api.key-2") == "API_KEY_2"


# --- reading folders -------------------------------------------------------------------------


def test_a_folder_loads_the_good_runbooks_and_lists_the_broken_with_their_line(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "good.md").write_text("# Good\n\n## Step\n\n```sh\necho ok\n```\n")
    (first / "unclosed.md").write_text("# Bad\n\n## Step\n\n```sh\necho never closed\n")
    (first / "README.md").write_text("# About these runbooks\n")
    (first / "notes.txt").write_text("not a runbook")
    (first / "latin1.md").write_bytes("# Caf\xe9\n".encode("latin-1"))
    (first / "huge.md").write_bytes(b"x" * (MAX_RUNBOOK_BYTES + 1))
    (second / "good.md").write_text("# Another good\n")
    (second / "other.md").write_text("# Other\n")
    runbooks, broken = load_runbooks([first, tmp_path / "missing", second])
    assert [book.name for book in runbooks] == ["good", "other"]
    assert runbooks[0].title == "Good"
    assert [(b.name, b.line, b.error) for b in broken] == [
        ("huge", None, f"it is larger than {MAX_RUNBOOK_BYTES // 1024} KiB"),
        ("latin1", 1, "it is not UTF-8 text"),
        ("unclosed", 5, "the code block opened here is never closed (end it with a line of ```)"),
        ("good", None, f"another runbook is also called 'good' ({first / 'good.md'}); this one is ignored"),
    ]
    assert broken[2].describe() == "unclosed.md line 5: the code block opened here is never closed (end it with a line of ```)"


def test_a_single_file_path_is_read_and_its_path_kept(tmp_path: Path) -> None:
    path = tmp_path / "one.md"
    path.write_text("# One\n")
    assert read_runbook(path).path == path
    assert load_runbooks([path])[0][0].name == "one"
