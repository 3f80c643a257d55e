"""Every error Conn raises on purpose, and what each means to an operator.

Library exceptions (httpx, sqlite3, asyncpg, keyring) are translated into
these at the module that calls the library, with ``raise ... from e``, so
callers handle one tree and messages speak the operator's language::

    ConsoleError
    ├── ConfigError              the config file is missing, unreadable or invalid
    │   └── ConfigNotFound       no config file in any of the places searched
    ├── StoreError               the event store cannot be opened, read or written
    │   ├── NotAConnDatabase     the file exists but is not a Conn store
    │   ├── SchemaTooNew         the store was written by a newer Conn
    │   ├── SchemaTooOld         the store predates this Conn: run `conn db migrate`
    │   ├── StateDirError        the state directory cannot be created or written
    │   ├── CorruptRow           a stored row cannot be read back (hand-edited, damaged)
    │   └── ConcurrencyError     an append lost the race: someone appended first
    ├── SecretError              a secret cannot be read, stored or deleted
    ├── SourceError              a signal source (prober, Prometheus) failed
    ├── ActionError              an action (flag file, command, webhook) failed
    └── CommandError             an operator command was refused (unknown
                                 target, bad argument, missing reason)
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base of every error Conn raises on purpose; its text is for operators."""


class ConfigError(ConsoleError):
    """The config file is missing, unreadable or invalid.

    ``problems`` holds one line per problem, each naming the dotted key and
    the offending value, so a person can fix them all in one edit.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        return head + "\n" + "\n".join(f"  {problem}" for problem in self.problems)


class ConfigNotFound(ConfigError):
    """No config file was found in any of the places searched."""


class StoreError(ConsoleError):
    """The event store cannot be opened, read or written."""


class NotAConnDatabase(StoreError):
    """The store file exists but is not a Conn database; nothing was written."""


class SchemaTooNew(StoreError):
    """The store was written by a newer Conn; nothing was written."""


class SchemaTooOld(StoreError):
    """The store is at an older schema version than this Conn writes; nothing was written.

    Refused rather than upgraded on the spot, because an upgrade is one-way:
    older Conns sharing the store would then refuse it (SchemaTooNew). The
    operator runs ``conn db migrate`` when every console can follow.
    """


class StateDirError(StoreError):
    """The state directory cannot be created or is not writable."""


class CorruptRow(StoreError):
    """A stored row cannot be read back: edited by hand or damaged.

    Its own class so ``conn audit --verify`` can report it as a broken chain,
    while an unreachable store stays an ordinary StoreError.
    """


class ConcurrencyError(StoreError):
    """An append carried a stale expected version: another actor appended first.

    Attributes:
        stream: the stream appended to.
        expected: the version the loser expected.
        actual: the version the stream is at now.
        winner: a one-line description of the event that won (who, what, when).
    """

    def __init__(self, stream: str, expected: int, actual: int, winner: str) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        self.winner = winner
        super().__init__(
            f"{stream} changed under you (expected version {expected}, now {actual}): {winner}"
        )


class SecretError(ConsoleError):
    """A secret cannot be read, stored or deleted."""


class SourceError(ConsoleError):
    """A signal source (the prober, Prometheus) failed."""


class ActionError(ConsoleError):
    """An action (a flag file, a command, a webhook) failed."""


class CommandError(ConsoleError):
    """An operator command was refused: unknown target, bad argument, no reason."""
