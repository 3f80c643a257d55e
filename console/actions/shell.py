"""Run a runbook step's script with a shell, on top of :func:`~console.actions.process.run_process`.

``run_process`` already gives every guarantee a misbehaving step needs: its
own process group, the timeout (SIGTERM, then SIGKILL to the group),
cancellation, bounded output with a head-and-tail excerpt, lines cleaned of
terminal escapes and redacted, a minimal environment. This module adds only
what makes a Markdown code block runnable:

* **The shell** runs the script as one argument: ``bash -c <script>
  conn-step`` (``$0`` names the step in the shell's own messages, so a
  missing command reads ``conn-step: line 3: kubectl: command not found``
  and exits 127). The shell is configurable; one that is not installed is
  an :class:`~console.errors.ActionError`, not an outcome.
* **Strict mode, as Runme does it**: bash, zsh and ksh scripts start with
  ``set -e -o pipefail``, sh scripts with ``set -e`` (dash has no
  pipefail). A runbook step is a sequence an operator reads as a whole:
  ``conn rollback …`` failing must fail the step, not be hidden by the
  ``echo done`` after it, and ``curl … | jq`` must fail when curl does
  (as in Runme, ``yes | head`` then fails too: ``yes`` dies of SIGPIPE;
  write ``head < <(yes)``). The prefix shares the script's first line, so
  the shell's line numbers are the block's. Other shells get the script as
  written.
* **The environment**: the run's variables as they are named (``SERVICE``,
  ``HEALTH_URL``; the shell expands ``${SERVICE}``, so a value is never
  parsed as shell code), each secret under its upper-cased name
  (``deploy_token`` → ``DEPLOY_TOKEN``; its value is redacted from every
  line and the excerpt as ``«secret:DEPLOY_TOKEN»``), ``CONN_CONFIG`` when
  given, and the ``conn`` next to this Python first on the ``PATH``, so a
  step's ``conn`` is the console's own version reading the same config.
* **stdin** is closed (``/dev/null``): a step that prompts gets end of file
  at once instead of hanging until its timeout.

:func:`step_changes` turns the outcome into the run's events. The engine's part,
in outline (``run`` is the :class:`~console.model.runbook_runs.RunState`)::

    append(start_step(run, runbook, n, typed=typed))
    try:
        outcome = await run_step(step.command, timeout=step.timeout, env=run.vars,
                                 secrets={name: get_secret(name) for name in runbook.secrets},
                                 conn_config=config_path, on_output=buffer.append)
    except ActionError as e:            # the shell is missing: the step could not start
        append(fail_step(run, n, outcome="failed", duration=0.0, error=str(e)))
    except asyncio.CancelledError as e:  # the operator's cancel key
        if (stopped := cancelled_outcome(e)) is not None:
            append(step_changes(run, n, stopped))
        raise
    else:
        append(step_changes(run, n, outcome))
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from console.actions.process import OutputCallback, ProcessOutcome, cancelled_outcome, run_process
from console.errors import ActionError
from console.model.runbook_runs import Change, FailOutcome, RunState, fail_step, finish_step
from console.model.runbooks import secret_variable

__all__ = [
    "DEFAULT_SHELL", "STEP_NAME", "OutputCallback", "cancelled_outcome", "run_step", "step_argv",
    "step_changes", "step_environment",
]

DEFAULT_SHELL = ("bash", "-c")
"""The shell a step runs with when none is configured: the script is appended as one argument."""
STEP_NAME = "conn-step"
"""``$0`` of a step's shell: what its own error messages begin with."""

_PIPEFAIL = frozenset({"bash", "zsh", "ksh", "mksh"})
_ERREXIT = frozenset({"sh", "dash", "ash", "busybox"})


async def run_step(
    script: str,
    *,
    # The timeout is the step's own (conn.timeout): expiry stops the group and
    # is an outcome (timed out), not a cancellation of the caller.
    timeout: float,  # noqa: ASYNC109
    shell: Sequence[str] = DEFAULT_SHELL,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    conn_config: Path | None = None,
    cwd: Path | None = None,
    on_output: OutputCallback | None = None,
    max_capture: int = 64 * 1024,
    kill_grace: float = 5.0,
) -> ProcessOutcome:
    """Run one step's script and wait for it, within ``timeout`` seconds.

    Args:
        script: the code block as parsed (``Step.command``), not resolved:
            the shell expands ``${NAME}`` from ``env``.
        timeout: seconds before the step's process group is stopped.
        shell: the shell's argv up to and including its "run this text" flag.
        env: the run's variables (``RunState.vars``), set as they are named.
        secrets: secret name → value; each is set as its upper-cased name and
            redacted from the output.
        conn_config: the config file the step's ``conn`` commands read
            (``CONN_CONFIG``).
        cwd: the working directory; the console's own by default.
        on_output: called ``on_output("stdout" | "stderr", line)`` for each
            line as it comes, redacted and cleaned of escapes; it must not block.
        max_capture: bytes of output kept in the outcome's excerpt.
        kill_grace: seconds between SIGTERM and SIGKILL.

    Returns:
        How the step ended: exit status (127 for a command not found), timed
        out, with an excerpt of its output.

    Raises:
        ActionError: the shell cannot be started (not installed), or a
            variable and a secret would share a name.
        asyncio.CancelledError: the caller cancelled (the operator's cancel
            key); the group was stopped and :func:`cancelled_outcome` reads
            the outcome from the error.
    """
    values = step_environment(env or {}, secrets or {}, conn_config=conn_config)
    return await run_process(
        step_argv(script, shell), timeout=timeout, env=values, cwd=cwd,
        on_output=on_output, max_capture=max_capture,
        secrets=[value for value in (secrets or {}).values() if value],
        kill_grace=kill_grace,
    )


def step_argv(script: str, shell: Sequence[str] = DEFAULT_SHELL) -> list[str]:
    """The argv that runs ``script``: the shell, the script with its strict-mode prefix, ``$0``."""
    if not shell:
        raise ActionError("no shell to run the step with: the shell setting is empty")
    kind = _shell_kind(shell)
    if kind in _PIPEFAIL:
        script = "set -e -o pipefail; " + script
    elif kind in _ERREXIT:
        script = "set -e; " + script
    argv = [*shell, script]
    if shell[-1].startswith("-") and shell[-1].endswith("c"):  # -c, -lc, -ec: $0 comes next
        argv.append(STEP_NAME)
    return argv


def step_environment(
    env: Mapping[str, str], secrets: Mapping[str, str], *, conn_config: Path | None = None
) -> dict[str, str]:
    """The variables a step gets on top of ``PATH``, ``HOME`` and ``LANG`` (see run_process).

    Raises:
        ActionError: a variable and a secret would share a name.
    """
    values = dict(env)
    for name, value in secrets.items():
        variable = secret_variable(name)
        if variable in values:
            raise ActionError(
                f"{variable} is both a variable and the secret {name!r}; rename one of them"
            )
        values[variable] = value
    if conn_config is not None:
        values["CONN_CONFIG"] = str(conn_config)
    if "PATH" not in values:
        here = Path(sys.executable).parent
        inherited = os.environ.get("PATH", os.defpath)
        if (here / "conn").exists() and str(here) not in inherited.split(os.pathsep)[:1]:
            values["PATH"] = os.pathsep.join([str(here), inherited])
    return values


def step_changes(state: RunState, number: int, outcome: ProcessOutcome) -> list[Change]:
    """The events that record how running step ``number`` ended: finished on exit 0,
    otherwise failed, timed out or cancelled, with the summary as the error
    ("exit 127: command not found", "killed after the 2m timeout")."""
    if outcome.ok:
        return finish_step(state, number, duration=outcome.duration, excerpt=outcome.output_excerpt)
    kind: FailOutcome = "timed_out" if outcome.timed_out else "cancelled" if outcome.cancelled else "failed"
    return fail_step(
        state, number, outcome=kind, duration=outcome.duration, error=outcome.summary(),
        excerpt=outcome.output_excerpt, exit_code=outcome.exit_code,
    )


def _shell_kind(shell: Sequence[str]) -> str:
    """``bash`` for ("bash", "-c"), ("/usr/bin/bash", "-c") and ("/usr/bin/env", "bash", "-c")."""
    names = [Path(word).name for word in shell if not word.startswith("-")]
    if names and names[0] == "env" and len(names) > 1:
        return names[1]
    return names[0] if names else ""
