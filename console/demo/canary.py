"""Which simulated users the checkout canary serves, decided by the flag file.

Conn writes flags as flagd JSON. The demo reads that same file and evaluates
``checkout_v2`` for a fixed population of users with flagd's own evaluator
(``openfeature-flagd-core``), targeting key = user id. Users who get ``true``
are served by ``checkout-canary``, the rest by ``checkout``; so moving the
flag's percentage in Conn visibly moves traffic between the two services.

Evaluation is cached per file identity (mtime, size, inode): a few stat calls
per second, and 1000 evaluations only when the file actually changed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import FlagNotFoundError

log = logging.getLogger(__name__)

CANARY_FLAG = "checkout_v2"
"""The boolean flag that routes checkout users to the canary."""
USER_COUNT = 1000
MAX_FLAG_FILE_BYTES = 4 * 1024 * 1024
"""A flag file larger than this is refused rather than parsed."""

_FileIdentity = tuple[int, int, int]


class CanaryRouter:
    """Routes simulated users ``user-1`` … ``user-N`` between stable and canary.

    Thread-safe: the stable and canary simulators call it from their own threads.
    """

    def __init__(
        self,
        flag_file: Path | None,
        *,
        flag_key: str = CANARY_FLAG,
        users: int = USER_COUNT,
    ) -> None:
        self.flag_file = flag_file
        self.flag_key = flag_key
        self.users = users
        self.last_error: str | None = None
        """Why the file could not be used, if it could not (the share is then 0)."""
        self._lock = threading.Lock()
        self._identity: _FileIdentity | None = None
        self._canary: frozenset[int] = frozenset()

    def canary_users(self) -> frozenset[int]:
        """Indices (0-based) of the users the canary serves, re-read if the file changed."""
        with self._lock:
            identity = self._stat()
            if identity != self._identity:
                self._identity = identity
                self._canary = self._evaluate() if identity is not None else frozenset()
                if identity is None:
                    self.last_error = None
            return self._canary

    def share(self) -> float:
        """Fraction 0–1 of the user population served by the canary."""
        return len(self.canary_users()) / self.users if self.users else 0.0

    def _stat(self) -> _FileIdentity | None:
        if self.flag_file is None:
            return None
        try:
            st = os.stat(self.flag_file)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _evaluate(self) -> frozenset[int]:
        """Evaluate the flag for every user; any problem with the file means no canary."""
        assert self.flag_file is not None
        try:
            with open(self.flag_file, "rb") as f:
                data = f.read(MAX_FLAG_FILE_BYTES + 1)
        except OSError as e:
            return self._unusable(f"cannot read {self.flag_file}: {e.strerror}")
        if len(data) > MAX_FLAG_FILE_BYTES:
            return self._unusable(f"{self.flag_file} is larger than {MAX_FLAG_FILE_BYTES} bytes")
        try:
            document = json.loads(data)
        except (ValueError, RecursionError) as e:
            return self._unusable(f"{self.flag_file} is not JSON: {e}")
        if not isinstance(document, dict):
            return self._unusable(f"{self.flag_file} is not a flagd document (a JSON object)")
        core = FlagdCore()
        chosen: set[int] = set()
        # The file is untrusted input to a third-party evaluator whose failure
        # modes (ParseError, jsonLogic's own errors, recursion) are not a closed
        # set; whatever it raises, the demo keeps serving with no canary.
        try:
            core.set_flags(document)
            for index in range(self.users):
                context = EvaluationContext(targeting_key=f"user-{index + 1}")
                if core.resolve_boolean_value(self.flag_key, False, context).value is True:
                    chosen.add(index)
        except FlagNotFoundError:
            self.last_error = None
            return frozenset()
        except Exception as e:
            return self._unusable(f"{self.flag_key} in {self.flag_file} cannot be evaluated: {e!r}")
        self.last_error = None
        return frozenset(chosen)

    def _unusable(self, reason: str) -> frozenset[int]:
        self.last_error = reason
        log.warning("demo canary routing off: %s", reason)
        return frozenset()
