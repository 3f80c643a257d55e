"""Run a command for a rollout action or a runbook step, and always get it back.

Commands that Conn runs are written by people in a hurry (a rollback, an
incident step) and misbehave like anything else: they hang, ignore SIGTERM,
leave background children behind, print megabytes, echo tokens and colour
codes. :func:`run_process` is the one place that runs them, so every caller
gets the same guarantees:

* an argv list, never a shell string (a shell is run only as argv, e.g.
  ``["bash", "-c", script]``), in its own process group (a new session);
* a minimal environment: ``PATH``, ``HOME`` and ``LANG`` inherited, plus what
  the caller gives — never the console's whole environment, which may hold
  ``CONN_SECRET_*`` values and database URLs;
* output streamed line by line as it comes, redacted (every registered
  secret and the values given in ``secrets``) and stripped of terminal
  control sequences; a line is cut at :data:`LINE_LIMIT` characters, and only
  an excerpt (head and tail) is kept;
* the timeout and cancellation stop the whole group: SIGTERM, then SIGKILL
  after ``kill_grace``, until no member is left — a grandchild that traps
  SIGTERM goes too. A descendant that leaves the group on purpose
  (``setsid``) is not followed;
* output still held open by leftovers :data:`OUTPUT_LINGER` seconds after the
  command exited ends the same way (a ``sleep 1000 &`` must not keep a step
  "running" until its timeout).

The pipes are read by an asyncio protocol, so a full pipe never blocks the
command and nothing waits on a slow reader: ``on_output`` is called on the
event loop and must be cheap (append to a buffer; let the UI drain it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal as signals
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from console.errors import ActionError
from console.model.sanitize import ELLIPSIS, clean_text
from console.model.units import format_duration
from console.secrets import redact

__all__ = ["INHERITED", "LINE_LIMIT", "ProcessOutcome", "cancelled_outcome", "run_process"]

log = logging.getLogger(__name__)

INHERITED = ("PATH", "HOME", "LANG")
"""The only variables a command inherits from the console's environment."""

LINE_LIMIT = 4096
"""Characters of one output line that are shown; the rest is cut ("…")."""

OUTPUT_LINGER = 1.0
"""Seconds the output may stay open after the command exited before the group is stopped."""

_LINE_BYTES = 4 * LINE_LIMIT  # an unfinished line longer than this is cut and skipped to its end
_KILL_WAIT = 2.0  # seconds to wait for the group to vanish after SIGKILL
_GROUP_POLL = 0.02
_MARKER_ROOM = 64  # bytes kept free in the excerpt for the "… N bytes omitted …" line
_OUTCOME = "conn_process_outcome"

OutputCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class ProcessOutcome:
    """How a command ended, with an excerpt of what it printed."""

    argv: tuple[str, ...]
    """The command as run, secret values redacted (safe to show and record)."""
    exit_code: int | None
    """The exit status; None when a signal ended the command."""
    signal: int | None
    """The signal that ended the command (SIGTERM, SIGKILL, …), if one did."""
    timed_out: bool
    """The command was still running at its timeout and was stopped."""
    cancelled: bool
    """The caller cancelled the run (see :func:`cancelled_outcome`)."""
    duration: float
    """Seconds from start until the command and its output were done with."""
    output_excerpt: str
    """stdout and stderr lines as they arrived, redacted and cleaned; head and tail when long."""
    truncated: bool
    """Something was left out of the excerpt, or a line was cut."""
    timeout: float
    """The timeout the command ran under, in seconds."""

    @property
    def ok(self) -> bool:
        """Exit status 0, neither timed out nor cancelled."""
        return self.exit_code == 0 and not self.timed_out and not self.cancelled

    def summary(self) -> str:
        """One line: "exit 0 in 1.2s", "killed after the 60s timeout", "exit 127: command not found"."""
        if self.timed_out:
            return f"killed after the {format_duration(self.timeout)} timeout"
        if self.cancelled:
            return f"cancelled after {_elapsed(self.duration)}"
        if self.signal is not None:
            return f"killed by {_signal_name(self.signal)} after {_elapsed(self.duration)}"
        if self.exit_code == 127:
            return "exit 127: command not found"
        if self.exit_code == 126:
            return "exit 126: not executable"
        return f"exit {self.exit_code} in {_elapsed(self.duration)}"


def cancelled_outcome(error: BaseException) -> ProcessOutcome | None:
    """The outcome a cancelled :func:`run_process` attached to its CancelledError, if any.

    Cancellation re-raises the very CancelledError the task received (so
    ``asyncio.timeout`` and task groups keep working); the outcome rides on
    it for a caller that records the cancelled step with its output.
    """
    outcome = getattr(error, _OUTCOME, None)
    return outcome if isinstance(outcome, ProcessOutcome) else None


async def run_process(
    argv: Sequence[str],
    *,
    # The timeout is ours, not the caller's asyncio.timeout: expiry stops the
    # group gracefully and is an outcome (timed_out), not a cancellation.
    timeout: float,  # noqa: ASYNC109
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    on_output: OutputCallback | None = None,
    max_capture: int = 64 * 1024,
    secrets: Sequence[str] = (),
    kill_grace: float = 5.0,
) -> ProcessOutcome:
    """Run ``argv`` in its own process group and wait for it, within ``timeout``.

    Args:
        argv: the program and its arguments; ``argv[0]`` is looked up on the PATH.
        timeout: seconds the command may run before its group is stopped.
        env: variables for the command, on top of :data:`INHERITED`.
        cwd: the working directory; the console's own by default.
        on_output: called as ``on_output("stdout" | "stderr", line)`` for every
            line as it comes, redacted and cleaned; it must not block.
        max_capture: bytes of output kept in the outcome's excerpt.
        secrets: values to redact besides the registered secrets; one passed
            in ``env`` shows as ``«secret:VARIABLE»``.
        kill_grace: seconds between SIGTERM and SIGKILL when stopping the group.

    Returns:
        How it ended; a non-zero exit or a timeout is an outcome, not an error.

    Raises:
        ActionError: the command cannot be started (missing, not executable,
            bad working directory).
        asyncio.CancelledError: the caller cancelled; the group was stopped
            first and :func:`cancelled_outcome` reads the outcome from the error.
    """
    if max_capture < 4 * _MARKER_ROOM:
        raise ValueError(f"max_capture must be at least {4 * _MARKER_ROOM} bytes")
    scrub = _Redactor(secrets, env or {})
    shown = tuple(scrub(arg) for arg in argv)
    if not shown:
        raise ActionError("no command to run: the argv list is empty")
    output = _Output(on_output, scrub, max_capture)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    transport, protocol = await _start(loop, output, argv, shown, _environment(env), cwd)
    pgid = transport.get_pid()
    settled = False
    timed_out = False

    def outcome(cancelled: bool = False) -> ProcessOutcome:
        output.flush()
        code = transport.get_returncode()
        text, truncated = output.excerpt.render()
        return ProcessOutcome(
            argv=shown,
            exit_code=code if code is None or code >= 0 else None,
            signal=-code if code is not None and code < 0 else None,
            timed_out=timed_out,
            cancelled=cancelled,
            duration=time.monotonic() - started,
            output_excerpt=text,
            truncated=truncated,
            timeout=timeout,
        )

    try:
        try:
            async with asyncio.timeout(timeout):
                await protocol.exited.wait()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(OUTPUT_LINGER):
                        await protocol.closed.wait()
        except TimeoutError:
            timed_out = not protocol.exited.is_set()
        if timed_out or not protocol.closed.is_set():
            await _stop(pgid, protocol, kill_grace)
        settled = True
    except asyncio.CancelledError as e:
        await _stop(pgid, protocol, kill_grace)
        settled = True
        setattr(e, _OUTCOME, outcome(cancelled=True))
        raise
    finally:
        if not settled:  # cancelled again while stopping: no more waiting
            _signal_group(pgid, signals.SIGKILL)
        transport.close()
    return outcome()


# --- starting and stopping -----------------------------------------------------


class _Protocol(asyncio.SubprocessProtocol):
    """Feeds both pipes to one :class:`_Output`; says when the command exited and its output ended."""

    def __init__(self, output: _Output) -> None:
        self._output = output
        self._open = {1, 2}
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self._output.feed(_STREAMS[fd], data if isinstance(data, bytes) else data.encode())

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._output.end(_STREAMS[fd])
        self._open.discard(fd)
        if not self._open:
            self.closed.set()

    def process_exited(self) -> None:
        self.exited.set()


_STREAMS = {1: "stdout", 2: "stderr"}


async def _start(
    loop: asyncio.AbstractEventLoop,
    output: _Output,
    argv: Sequence[str],
    shown: tuple[str, ...],
    env: dict[str, str],
    cwd: Path | None,
) -> tuple[asyncio.SubprocessTransport, _Protocol]:
    """Start the command, translating why it cannot start into an ActionError."""
    name = clean_text(shown[0], 120)
    try:
        return await loop.subprocess_exec(
            lambda: _Protocol(output),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as e:
        if cwd is not None and e.filename is not None and str(e.filename) == str(cwd):
            reason = f"working directory {clean_text(str(cwd), 120)}: {_strerror(e)}"
        elif e.errno == errno.ENOENT:
            reason = "not found" if "/" in argv[0] else "command not found on the PATH"
        elif e.errno == errno.EACCES:
            reason = "permission denied (not an executable file)"
        elif e.errno == errno.ENOEXEC:
            reason = "exec format error (a script without a #! line?)"
        else:
            reason = _strerror(e)
        raise ActionError(f"cannot run {name!r}: {reason}") from e
    except (ValueError, TypeError) as e:  # a NUL byte in argv, a bad variable name
        raise ActionError(f"cannot run {name!r}: {redact(str(e))}") from e


def _strerror(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(extra or {})
    return env


async def _stop(pgid: int, protocol: _Protocol, grace: float) -> None:
    """SIGTERM the group, SIGKILL it after ``grace``, then wait for the exit to be seen."""
    if _signal_group(pgid, signals.SIGTERM):
        _signal_group(pgid, signals.SIGCONT)  # a stopped process acts on TERM once continued
        if not await _vanished(pgid, grace):
            _signal_group(pgid, signals.SIGKILL)
            await _vanished(pgid, _KILL_WAIT)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_KILL_WAIT):
            await protocol.exited.wait()
            await protocol.closed.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed user (setuid); nothing more we can do
        return True
    return True


async def _vanished(pgid: int, within: float) -> bool:
    """Wait until no live process is left in the group; False if one still is after ``within``."""
    deadline = time.monotonic() + within
    while await asyncio.to_thread(_group_alive, pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_GROUP_POLL)
    return True


def _group_alive(pgid: int) -> bool:
    """Whether the group has a member that is not a zombie.

    ``killpg(pgid, 0)`` alone counts zombies, and an orphaned grandchild stays
    one for as long as PID 1 does not reap it (common in containers); so on
    Linux the members are looked up in /proc.
    """
    if not _signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


# --- output: lines, redaction, excerpt -------------------------------------------


class _Redactor:
    """Registered secrets, then the caller's ``secrets`` (named by the variable holding them)."""

    def __init__(self, secrets: Sequence[str], env: Mapping[str, str]) -> None:
        names = {value: key for key, value in env.items() if value}
        values = sorted({value for value in secrets if value}, key=len, reverse=True)
        self._pairs = [
            (value, f"«secret:{names[value]}»" if value in names else "«secret»") for value in values
        ]

    def __call__(self, text: str) -> str:
        text = redact(text)
        for value, label in self._pairs:
            if value in text:
                text = text.replace(value, label)
        return text


class _Output:
    """Splits each stream into lines, makes them safe to show, and hands them on."""

    def __init__(self, on_output: OutputCallback | None, scrub: _Redactor, max_capture: int) -> None:
        self._on_output = on_output
        self._scrub = scrub
        self.excerpt = _Excerpt(max_capture)
        self._pending = {name: bytearray() for name in _STREAMS.values()}
        self._skipping = dict.fromkeys(_STREAMS.values(), False)

    def feed(self, stream: str, data: bytes) -> None:
        if self._skipping[stream]:  # the rest of a line already cut
            end = data.find(b"\n")
            if end < 0:
                return
            data = data[end + 1 :]
            self._skipping[stream] = False
        pending = self._pending[stream]
        pending += data
        end = pending.rfind(b"\n")
        if end >= 0:
            block = bytes(pending[:end])
            del pending[: end + 1]
            self._emit(stream, block)
        if len(pending) > _LINE_BYTES:
            self._emit(stream, bytes(pending[:_LINE_BYTES]), cut=True)
            pending.clear()
            self._skipping[stream] = True

    def end(self, stream: str) -> None:
        """The stream closed: an unfinished last line is still a line."""
        pending = self._pending[stream]
        if pending:
            self._emit(stream, bytes(pending))
            pending.clear()
        self._skipping[stream] = False

    def flush(self) -> None:
        for stream in self._pending:
            self.end(stream)

    def _emit(self, stream: str, block: bytes, *, cut: bool = False) -> None:
        # Redacted as one block before any line is cut, so a cut never
        # splits a secret; redacted again after cleaning, so an escape
        # sequence inside a secret does not hide it. Whole-block checks
        # first: a flood of short lines must cost little per line.
        text = self._scrub(block.decode("utf-8", "replace"))
        lines = text.split("\n")
        if not all(map(str.isprintable, lines)):
            lines = [line if line.isprintable() else self._clean(line) for line in lines]
        if cut or max(map(len, lines)) > LINE_LIMIT:
            lines = [_cut(line) if cut or len(line) > LINE_LIMIT else line for line in lines]
            self.excerpt.cut = True
        self.excerpt.extend(lines)
        if self._on_output is None:
            return
        try:
            for line in lines:
                self._on_output(stream, line)
        except Exception:
            # The command keeps running (it may be half-way through a
            # rollback); only the live view stops.
            log.exception("on_output failed; no more output is streamed for this command")
            self._on_output = None

    def _clean(self, line: str) -> str:
        return self._scrub(clean_text(line.removesuffix("\r").expandtabs(), LINE_LIMIT + 1))


class _Excerpt:
    """The first and last lines of the output within a byte budget, and how much fell between."""

    def __init__(self, limit: int) -> None:
        self._head_budget = limit // 2
        self._tail_budget = limit - self._head_budget - _MARKER_ROOM
        self._head: list[str] = []
        self._head_size = 0
        self._head_full = False
        self._tail: deque[tuple[str, int]] = deque()
        self._tail_size = 0
        self._omitted = 0
        self.cut = False

    def extend(self, lines: list[str]) -> None:
        start = 0
        while not self._head_full and start < len(lines):
            size = _size(lines[start])
            if self._head_size + size > self._head_budget:
                self._head_full = True
                break
            self._head.append(lines[start])
            self._head_size += size
            start += 1
        if start == len(lines):
            return
        if _size(lines[-1]) > self._tail_budget:  # keep the last line, cut to fit
            cut = lines[-1].encode()[: self._tail_budget // 2].decode("utf-8", "ignore")
            lines = [*lines[:-1], cut + ELLIPSIS]
            self.cut = True
        # Only a suffix of these lines can stay in the tail: find it walking
        # back, and count everything before it as omitted in one go.
        first, room, kept = len(lines), self._tail_budget, []
        while first > start and (size := _size(lines[first - 1])) <= room:
            first -= 1
            room -= size
            kept.append((lines[first], size))
        if first > start:  # lines fell out, so the old tail is not contiguous with the rest
            skipped = lines[start:first]
            self._omitted += self._tail_size + len("\n".join(skipped).encode()) + 1
            self._tail.clear()
            self._tail_size = 0
        for line, size in reversed(kept):
            self._tail.append((line, size))
            self._tail_size += size
        while self._tail_size > self._tail_budget:
            _, dropped = self._tail.popleft()
            self._tail_size -= dropped
            self._omitted += dropped

    def render(self) -> tuple[str, bool]:
        lines = list(self._head)
        if self._omitted:
            lines.append(f"{ELLIPSIS} {self._omitted:,} bytes omitted {ELLIPSIS}")
        lines.extend(line for line, _ in self._tail)
        return "\n".join(lines), bool(self._omitted) or self.cut


def _size(line: str) -> int:
    """Bytes a line takes in the excerpt, its newline included."""
    return (len(line) if line.isascii() else len(line.encode())) + 1


def _cut(line: str) -> str:
    return line[: LINE_LIMIT - len(ELLIPSIS)].removesuffix(ELLIPSIS) + ELLIPSIS


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest}s"


def _signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"
