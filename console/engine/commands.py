"""Commands: the one door every state change goes through.

A key on the flags screen, ``conn flag kill``, the leader seeding the
config's flags and (later) an automatic rollback are all a typed
:class:`Command` passed to :meth:`console.engine.core.Engine.execute`. The
:class:`CommandBus` checks it — the single place where permissions,
read-only mode and two-person approval are decided — hands it to the
handler its feature module registered, and returns a :class:`CommandResult`
saying what changed. Handlers append events with the stream's expected
version, so of two operators changing one thing the second is told who
changed it first.

Actors: an operator's commands carry the operator (OS user, SSH client); the
leader's own automatic actions carry :func:`automatic_actor` — never the
user who happened to start ``conn agent``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from console.errors import CommandError
from console.model.events import Actor, Event
from console.secrets import redact

log = logging.getLogger(__name__)

MAX_REASON = 4000
"""Longest reason a command accepts; the store refuses longer ones too."""

AUTOMATIC_USER = "conn-auto"
"""The user part of the leader's automatic actor: ``conn-auto@host pid N``."""


def automatic_actor() -> Actor:
    """Who the leader's own decisions are attributed to: ``conn-auto@host pid N``.

    Distinct from every human, so ``conn audit`` shows what Conn did by itself
    and which process did it.
    """
    return Actor(user=f"{AUTOMATIC_USER}@{socket.gethostname()} pid {os.getpid()}")


def is_automatic(actor: Actor) -> bool:
    return actor.user.startswith(AUTOMATIC_USER + "@")


@dataclass(frozen=True, kw_only=True)
class Command:
    """A request to change state. Subclasses are frozen dataclasses named for what they do.

    Class attributes say how the bus checks them:

    - ``changes_state``: False for commands that only write outside the log
      (an export to a file); read-only mode still refuses them if they write.
    - ``automatic_only``: only the leader's automatic actor may run it.
    - ``needs_reason``: a non-empty reason is required (it goes in the audit log).
    """

    reason: str = ""

    changes_state: ClassVar[bool] = True
    automatic_only: ClassVar[bool] = False
    needs_reason: ClassVar[bool] = True

    @property
    def summary(self) -> str:
        """What the command does, in words (for confirmations and logs)."""
        return type(self).__name__


@dataclass(frozen=True)
class CommandResult:
    """What a command changed.

    Attributes:
        command: the command that ran.
        actor: who it is attributed to.
        events: the events it appended, in order (empty when nothing changed).
        message: one line for people ("checkout_v2: killed").
        detail: the feature's own result (e.g. the flag's new view), for callers.
    """

    command: Command
    actor: Actor
    events: tuple[Event, ...]
    message: str
    detail: Any = None

    @property
    def changed(self) -> bool:
        return bool(self.events)


Handler = Callable[[Any, Actor], Awaitable[CommandResult]]
"""``handler(command, actor)``: does the work of one command type."""


@dataclass(frozen=True)
class Policy:
    """What this engine allows: the rules every command is checked against.

    Attributes:
        read_only: refuse every operator command that changes state (a console for
            watching). The leader's automatic actions still run: a read-only console
            that leads must still roll back a bad canary.
    """

    read_only: bool = False


class CommandBus:
    """Checks each command once, then runs the handler registered for its type."""

    def __init__(self, *, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self._handlers: dict[type[Command], Handler] = {}

    def register(self, handlers: Mapping[type[Command], Handler]) -> None:
        """Add a feature module's handlers; one handler per command type."""
        for kind, handler in handlers.items():
            if kind in self._handlers:
                raise ValueError(f"two handlers for {kind.__name__}")
            self._handlers[kind] = handler

    def check(self, command: Command, actor: Actor) -> None:
        """Refuse what the policy, the actor or the command's own rules do not allow.

        Raises:
            CommandError: in the operator's words, saying what to do instead.
        """
        if self.policy.read_only and command.changes_state and not is_automatic(actor):
            raise CommandError(
                f"this console is read-only: {command.summary} was not done "
                "(start it without --read-only to make changes)"
            )
        if command.automatic_only and not is_automatic(actor):
            raise CommandError(f"{command.summary} is done by the leader only, not by {actor}")
        if command.needs_reason:
            reason = command.reason.strip()
            if not reason:
                raise CommandError("a reason is required: say why (it goes in the audit log)")
            if len(reason) > MAX_REASON:
                raise CommandError(f"the reason is longer than {MAX_REASON} characters")

    async def execute(self, command: Command, actor: Actor) -> CommandResult:
        """Check ``command``, run it as ``actor`` and say what changed.

        Raises:
            CommandError: refused (unknown name, no reason, read-only, …).
            ConcurrencyError: someone changed the same stream first (it says who).
            ActionError: recorded, but an action after it (a file write) failed.
        """
        handler = self._handlers.get(type(command))
        if handler is None:
            raise CommandError(f"no handler for {type(command).__name__}")
        self.check(command, actor)
        result = await handler(command, actor)
        if result.changed:
            because = f" — {redact(command.reason.strip())}" if command.reason.strip() else ""
            log.info("%s by %s: %s%s", command.summary, actor, result.message, because)
        return result
