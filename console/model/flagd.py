"""flagd's wire format and the official evaluator, kept apart from Conn's flag state.

Conn's flags *are* flagd flag definitions. This module is the one place that
knows flagd's JSON (what ``flags.json`` holds, byte-stable so hashes compare)
and the one place that asks ``openfeature-flagd-core``, the evaluator
OpenFeature's Python in-process provider uses, for an answer, so the answer
the console shows is the answer an application gets from the exported file.
Nothing here hashes a targeting key itself. Config, state and the fold live in
:mod:`console.model.flags`; keeping the library-facing half here means a
flagd schema or evaluator change touches one module.

How Conn's state maps onto flagd (precedence: killed > disabled > allowlist
and groups > fractional > default):

- killed: ``state`` ENABLED, no ``targeting``, ``defaultVariant`` = the off
  variant. flagd serves the off variant to everyone (reason STATIC) whatever
  default the application passes; ``state`` DISABLED could not promise that,
  because flagd treats a disabled flag as absent and returns the caller's
  default.
- disabled: ``state`` DISABLED (flagd: "treated as if it doesn't exist"; the
  application falls back to its code default).
- enabled: ``targeting`` = ``if`` [key ``in`` allowlist ∪ groups → on,
  else ``fractional`` [["on", w], ["off", 10000 − w]]]. flagd's buckets are
  ranges of one hash taken in list order, and the on range always comes
  first, so raising w only adds keys: nobody who was on is turned off (it is
  the unchanging order that matters; flipping it between stages would).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import OpenFeatureError
from openfeature.flag_evaluation import Reason

from console.model.flags import TOTAL_WEIGHT, FlagSet, FlagState, check_key, format_percent

FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"


# --- flagd JSON --------------------------------------------------------------


def flagd_flag(state: FlagState, groups: FlagSet) -> dict[str, Any]:
    """One flagd flag definition for ``state`` (see the module docstring for the mapping)."""
    definition: dict[str, Any] = {
        "state": "ENABLED" if state.enabled or state.killed else "DISABLED",
        "variants": dict(state.variants),
        "defaultVariant": state.off_variant,
    }
    metadata: dict[str, Any] = {}
    if state.description:
        metadata["description"] = state.description
    if state.killed:
        metadata["killed"] = True
    else:
        keys = set(state.allow)
        for group in state.groups:
            keys.update(groups.group_keys(group))
        rollout: Any = (
            {"fractional": [[state.on_variant, state.on_weight],
                            [state.off_variant, TOTAL_WEIGHT - state.on_weight]]}
            if state.on_weight > 0 else None
        )
        if keys:
            condition = {"in": [{"var": "targetingKey"}, sorted(keys)]}
            branches: list[Any] = [condition, state.on_variant]
            if rollout is not None:
                branches.append(rollout)
            definition["targeting"] = {"if": branches}
        elif rollout is not None:
            definition["targeting"] = rollout
    if metadata:
        definition["metadata"] = metadata
    return definition


def flagd_document(flags: FlagSet) -> dict[str, Any]:
    """The whole flagd file: every flag, sorted by name so the bytes are stable."""
    return {
        "$schema": FLAGD_SCHEMA,
        "flags": {name: flagd_flag(flags.flags[name].state, flags) for name in sorted(flags.flags)},
    }


def render_document(document: Mapping[str, Any]) -> bytes:
    """The file's bytes: indented JSON, stable for the same state (so hashes compare)."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# --- evaluation --------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """What an application asking flagd about ``key`` gets, and why.

    ``variant`` is None when the flag is disabled: flagd then returns the
    application's code default, assumed here to be the off variant's value.
    """

    flag: str
    key: str
    variant: str | None
    value: bool | str
    reason: str
    """killed, disabled, allowlist, fractional or default (Conn's words)."""
    detail: str
    """The evaluator's own reason (STATIC, DISABLED, TARGETING_MATCH, DEFAULT) and the group."""

    def as_json(self) -> dict[str, Any]:
        return {"flag": self.flag, "key": self.key, "variant": self.variant,
                "value": self.value, "reason": self.reason, "detail": self.detail}


class FlagEvaluator:
    """openfeature-flagd-core loaded with Conn's flagd document: the one source of answers."""

    def __init__(self, flags: FlagSet) -> None:
        self.flags = flags
        self._core = FlagdCore()
        # A string, not the dict: flagd-core mutates the dicts it is given.
        self._core.set_flags(json.dumps(flagd_document(flags)))

    def evaluate(self, name: str, key: str) -> Evaluation:
        """Resolve flag ``name`` for targeting key ``key`` with the official evaluator.

        Raises:
            KeyError: no flag ``name``.
            ValueError: ``key`` is not a targeting key, or the evaluator refused the flag.
        """
        state = self.flags.flags[name].state
        check_key(key)
        off = state.value_of(state.off_variant)
        context = EvaluationContext(targeting_key=key)
        try:
            if isinstance(off, bool):
                details: Any = self._core.resolve_boolean_value(name, off, context)
            else:
                details = self._core.resolve_string_value(name, off, context)
        except OpenFeatureError as e:
            raise ValueError(f"flagd evaluator refused flag {name}: {e}") from e
        flagd_reason = str(details.reason.value if isinstance(details.reason, Reason) else details.reason)
        reason, detail = _conn_reason(state, self.flags, key, details.variant, flagd_reason)
        return Evaluation(name, key, details.variant, details.value, reason, detail)


def _conn_reason(
    state: FlagState, flags: FlagSet, key: str, variant: str | None, flagd_reason: str
) -> tuple[str, str]:
    """Name why flagd answered as it did, in the operator's words."""
    if state.killed:
        return "killed", flagd_reason
    if flagd_reason == Reason.DISABLED:
        return "disabled", flagd_reason
    if flagd_reason == Reason.TARGETING_MATCH:
        if key in state.allow and variant == state.on_variant:
            return "allowlist", f"{flagd_reason}, allowlist"
        for group in state.groups:
            if key in flags.group_keys(group) and variant == state.on_variant:
                return "allowlist", f"{flagd_reason}, group {group}"
        return "fractional", f"{flagd_reason}, {format_percent(state.on_weight)} rollout"
    return "default", flagd_reason
