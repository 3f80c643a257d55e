"""The ``[rollouts.NAME]`` config: stages, gate, abort criteria, actions.

This is the contract the issue fixes (docs, scripts and seed configs rely on
it): extend it, don't rename it. Criteria stay strings here; their grammar
lives in :mod:`console.model.gates`, and ``console.config`` parses each one
so ``conn check`` can quote it and point at the bad part. What can be judged
without that grammar is judged here: shapes, names, percentages that only go
up, stage names that are unique, actions that are argv lists (never a shell
string).

Every cross-field problem is reported together with pydantic's own, each at
its own key (``rollouts.checkout.stages[2].percent``), the way
:mod:`console.model.flags` does it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from console.model.flags import check_name, key_problem, percent_to_weight
from console.model.units import Duration, Percent, parse_percent

ROLLOUT_STREAM = "rollout/"
"""A rollout's events live on ``rollout/<name>``."""
MAX_STAGES = 100
MAX_ARGV = 256
MAX_CRITERION_LENGTH = 200
MAX_ACTION_TIMEOUT = 3600.0
"""An action may run at most an hour; anything longer is a job, not a rollout step."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_NAME_RULE = "letters, digits, '_', '.', '-', starting with a letter or digit, at most 100"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

AdvanceMode = Literal["manual", "auto"]
GatePolicy = Literal["hold", "rollback", "notify"]
UnknownPolicy = Literal["hold", "notify"]
"""What no data or a source error does: never a rollback and never a pass (issue 10)."""


def check_rollout_name(name: str) -> str:
    """Return ``name`` if it can name a rollout (and its stream); ValueError otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{name!r} is not a valid rollout name ({_NAME_RULE})")
    return name


def _criterion(text: str) -> str:
    if not text.strip():
        raise ValueError('a criterion cannot be empty (e.g. "p95 < 500ms")')
    if len(text) > MAX_CRITERION_LENGTH or _CONTROL.search(text):
        raise ValueError(
            f"is not a criterion (one line, at most {MAX_CRITERION_LENGTH} characters)"
        )
    return text


def _stage_name(text: str) -> str:
    if not text.strip() or len(text) > 40 or _CONTROL.search(text):
        raise ValueError("is not a stage name (1–40 characters on one line)")
    return text


def _secret_name(text: str) -> str:
    if not text.strip() or len(text) > 64 or _CONTROL.search(text):
        raise ValueError("is not a secret name (the name given to `conn secret set`)")
    return text


RolloutName = Annotated[str, AfterValidator(check_rollout_name)]
CriterionText = Annotated[StrictStr, AfterValidator(_criterion)]
"""A criterion as written ("p95 < 500ms"); :mod:`console.model.gates` parses it."""
SecretName = Annotated[StrictStr, AfterValidator(_secret_name)]
ActionTimeout = Annotated[Duration, Field(gt=0, le=MAX_ACTION_TIMEOUT)]


class Strict(BaseModel):
    """Unknown keys are errors, values are immutable, numbers finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- actions -----------------------------------------------------------------


def _one_kind(data: Any, other: str, this: str) -> Any:
    if isinstance(data, Mapping) and other in data:
        raise ValueError(
            f"an action either runs a command or calls a webhook; this one has both "
            f"{this!r} and {other!r}: split it into two actions"
        )
    return data


class CommandAction(Strict):
    """``{ run = ["kubectl", "rollout", "undo", "deployment/checkout"], timeout = "60s" }``."""

    run: list[StrictStr]
    """The command as an argv list; no shell ever reads it."""
    timeout: ActionTimeout = 60.0
    """Past this the process group is killed and the action fails."""
    idempotent: StrictBool = False
    """Safe to run twice: after a crash mid-run the next leader retries it by itself.
    Otherwise it is shown as interrupted and retried only when a person says so."""
    env: dict[str, StrictStr] = Field(default_factory=dict)
    """Extra environment variables (plain values; secrets go in ``secrets``)."""
    secrets: list[SecretName] = Field(default_factory=list)
    """Secrets by name, each set in the command's environment under its own name."""

    @model_validator(mode="before")
    @classmethod
    def _not_both(cls, data: Any) -> Any:
        return _one_kind(data, "webhook", "run")

    @field_validator("run", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                words = shlex.split(value)
            except ValueError:
                words = value.split()
            raise ValueError(
                "run takes an argv list, never a shell string: write "
                f"run = {json.dumps(words or ['program', 'arg'])}"
            )
        return value

    @field_validator("run")
    @classmethod
    def _argv_words(cls, value: list[str]) -> list[str]:
        if not value or not value[0].strip():
            raise ValueError('run needs at least the program: run = ["kubectl", "…"]')
        if len(value) > MAX_ARGV:
            raise ValueError(f"at most {MAX_ARGV} arguments")
        if any("\x00" in word for word in value):
            raise ValueError("an argument cannot contain a NUL character")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not _ENV_NAME.match(name)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: not environment variable names")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_env_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _ENV_NAME.match(name)]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: a secret given to a command becomes an "
                "environment variable of the same name, so only letters, digits and '_'"
            )
        if len(set(value)) != len(value):
            raise ValueError("a secret is listed twice")
        return value

    @model_validator(mode="after")
    def _env_or_secret(self) -> CommandAction:
        if clash := sorted(set(self.env) & set(self.secrets)):
            raise ValueError(f"{', '.join(clash)} is set in env and given as a secret; keep one")
        return self

    def describe(self) -> str:
        """The command as a person would type it (for views; never executed)."""
        return shlex.join(self.run)


def _json_value(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _json_value(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_value(item, f"{where}[{index}]")
    elif not isinstance(value, str | int | float | bool):
        raise ValueError(f"{where} is a {type(value).__name__}; a JSON body holds text, numbers, booleans, arrays and tables")


class WebhookAction(Strict):
    """``{ webhook = "deploy_hook_url", body = { rollout = "{rollout}", reason = "{reason}" } }``."""

    webhook: SecretName
    """The name of the secret that holds the URL (a URL is a credential; never in config)."""
    body: dict[str, Any] = Field(default_factory=dict)
    """The JSON body, a template: "{rollout}", "{run}", "{stage}", "{reason}", "{actor}" are filled in."""
    timeout: ActionTimeout = 10.0
    """Past this the call is abandoned and the action fails."""
    idempotent: StrictBool = False
    """Safe to call twice: after a crash mid-call the next leader retries it by itself."""

    @model_validator(mode="before")
    @classmethod
    def _not_both(cls, data: Any) -> Any:
        return _one_kind(data, "run", "webhook")

    @field_validator("body")
    @classmethod
    def _json_body(cls, value: dict[str, Any]) -> dict[str, Any]:
        _json_value(value, "body")
        return value

    def describe(self) -> str:
        return f"webhook {self.webhook}"


def _action_kind(value: Any) -> str | None:
    if isinstance(value, CommandAction) or (isinstance(value, Mapping) and "run" in value):
        return "action[run]"
    if isinstance(value, WebhookAction) or (isinstance(value, Mapping) and "webhook" in value):
        return "action[webhook]"
    return None


# The tags carry brackets so config errors leave them out of the dotted key
# (console.config treats "[...]" location parts as union branches):
# "actions[0].timeout", not "actions[0].run.timeout".
Action = Annotated[
    Annotated[CommandAction, Tag("action[run]")] | Annotated[WebhookAction, Tag("action[webhook]")],
    Discriminator(
        _action_kind,
        custom_error_type="action_shape",
        custom_error_message=(
            'an action is a table: { run = ["kubectl", "rollout", "undo", "deployment/x"], '
            'timeout = "60s" } or { webhook = "secret_name", body = { … } }'
        ),
    ),
]
"""Run a command or call a webhook."""


# --- gate, abort, stages -----------------------------------------------------


class GateConfig(Strict):
    """``[rollouts.NAME.gate]``: must pass (every criterion) before an advance; evaluated continuously."""

    criteria: list[CriterionText] = Field(default_factory=list)
    """What must hold: "p95 < 500ms", "error_rate < 0.1%", "p95 <= 1.2x baseline"."""
    on_fail: GatePolicy = "hold"
    """A failing gate: "hold" the rollout, "rollback", or "notify" only (a dry run for tuning)."""
    on_no_data: UnknownPolicy = "hold"
    """Too few samples or no traffic: "hold" or "notify"; never a pass, never a rollback."""
    on_source_error: UnknownPolicy = "hold"
    """The source cannot answer (Prometheus down): "hold" or "notify"; never a pass, never a rollback."""
    min_samples: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 20
    """Fewer samples than this in a criterion's window is no data, not a pass."""
    failure_limit: Annotated[StrictInt, Field(ge=1, le=1000)] = 1
    """Consecutive failed evaluations before ``on_fail`` acts (1: the first)."""
    successes_to_pass: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    """Consecutive passing evaluations that count as a pass before the bake time ends
    (an early pass); unset, the gate is judged at each evaluation."""


class AbortConfig(Strict):
    """``[rollouts.NAME.abort]``: what must not happen, in every stage and during holds."""

    criteria: list[CriterionText] = Field(default_factory=list)
    """Conditions that end the rollout: "error_rate > 5% for 5m", "health_failures > 3 within 5m"."""
    on_fail: GatePolicy = "rollback"
    """When one holds: "rollback" (after ``grace``), "hold", or "notify" only."""


class OnRollbackConfig(Strict):
    """``[rollouts.NAME.on_rollback]``: run after the flag is set off for everyone."""

    actions: list[Action] = Field(default_factory=list)
    """Commands and webhooks, in order."""


class StageConfig(Strict):
    """One ``[[rollouts.NAME.stages]]`` entry."""

    name: Annotated[StrictStr, AfterValidator(_stage_name)]
    """Shown on the stage bar and in every message ("internal", "10%")."""
    groups: list[str] = Field(default_factory=list)
    """Flag groups (from [flags.groups]) that get the new variant in this stage."""
    allow: list[str] = Field(default_factory=list)
    """Targeting keys that get the new variant in this stage."""
    percent: Percent = 0.0
    """The share of everyone else that gets it: 10, "0.5%" (steps of 0.01%)."""
    bake: Duration = 0.0
    """Minimum time in this stage before it may advance."""
    gate: list[CriterionText] = Field(default_factory=list)
    """Criteria for this stage, added to the rollout's gate."""
    actions: list[Action] = Field(default_factory=list)
    """Run on entering the stage, after the flag is set."""
    advance: AdvanceMode | None = None
    """Overrides the rollout's ``advance`` for leaving this stage."""

    @field_validator("percent")
    @classmethod
    def _exact_weight(cls, value: float) -> float:
        percent_to_weight(value)
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for name in value:
            check_name(name, "group")
        if len(set(value)) != len(value):
            raise ValueError("a group is listed twice")
        return value

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        for key in value:
            if problem := key_problem(key):
                raise ValueError(f"{key!r} {problem}")
        if len(set(value)) != len(value):
            raise ValueError("a key is listed twice")
        return value


class RolloutConfig(Strict):
    """One ``[rollouts.NAME]`` table: a staged rollout of a change."""

    canary: StrictStr
    """The service whose signals the criteria read."""
    baseline: StrictStr | None = None
    """The service "x baseline" criteria compare with."""
    flag: StrictStr | None = None
    """The flag whose audience and percentage each stage sets; off for everyone on rollback."""
    grace: Duration = 0.0
    """Countdown before an automatic rollback, during which anyone can hold or roll back now."""
    advance: AdvanceMode = "manual"
    """"auto": the leader advances once the bake time has passed and the gate passes."""
    max_detection: Duration | None = None
    """`conn check` fails when a rollback criterion's worst-case detection time is longer."""
    stages: list[StageConfig]
    """In order; percentages never go down."""
    gate: GateConfig = Field(default_factory=GateConfig)
    """Must pass before every advance."""
    abort: AbortConfig = Field(default_factory=AbortConfig)
    """Must not hold, ever; evaluated in every stage and during holds."""
    on_rollback: OnRollbackConfig = Field(default_factory=OnRollbackConfig)
    """What a rollback does besides setting the flag off."""

    @field_validator("canary", "baseline", "flag")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or _CONTROL.search(value)):
            raise ValueError("cannot be empty or hold control characters")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _stage_rules(
        cls, data: Any, handler: ModelWrapValidatorHandler[RolloutConfig]
    ) -> RolloutConfig:
        """Judge the stages as a sequence on the raw table, alongside every other problem.

        An "after" validator would run only once each stage is valid, so a
        duplicate name would surface one `conn check` later than a bad bake.
        """
        problems = _sequence_problems(data) if isinstance(data, Mapping) else []
        try:
            validated = handler(data)
        except ValidationError as e:
            _raise([*problems, *((tuple(err["loc"]), err.get("input"), err["msg"], err["type"]) for err in e.errors())])
            raise
        _raise(problems)
        return validated

    def criteria_for(self, index: int) -> tuple[str, ...]:
        """The gate of stage ``index``: the rollout's criteria, then the stage's own (once each)."""
        return tuple(dict.fromkeys([*self.gate.criteria, *self.stages[index].gate]))

    def advance_mode(self, index: int) -> AdvanceMode:
        """How stage ``index`` is left: its own ``advance``, else the rollout's."""
        return self.stages[index].advance or self.advance


RolloutsConfig = dict[RolloutName, RolloutConfig]
"""``[rollouts]``: rollouts by name (the name is also the stream, ``rollout/<name>``)."""


def stage_audience(plan: RolloutConfig, index: int) -> tuple[float, tuple[str, ...], tuple[str, ...]]:
    """(percent, groups, allow) that the flag gets in stage ``index``.

    Raises:
        IndexError: ``index`` is not a stage of ``plan``.
    """
    if not 0 <= index < len(plan.stages):
        raise IndexError(f"stage index {index} is outside 0–{len(plan.stages) - 1}")
    stage = plan.stages[index]
    return stage.percent, tuple(stage.groups), tuple(stage.allow)


_Problem = tuple[tuple[str | int, ...], Any, str, str]
"""(location, offending value, message, error type)."""


def _sequence_problems(data: Mapping[str, Any]) -> list[_Problem]:
    """Duplicate stage names, percentages that go down, audiences without a flag."""
    stages = data.get("stages")
    if not isinstance(stages, list):
        return []
    problems: list[_Problem] = []
    if not stages:
        problems.append((("stages",), stages, "a rollout needs at least one stage", "rollouts"))
    if len(stages) > MAX_STAGES:
        problems.append((("stages",), f"{len(stages)} stages", f"at most {MAX_STAGES} stages", "rollouts"))
    seen: dict[str, int] = {}
    highest: tuple[float, int] | None = None
    for index, stage in enumerate(stages):
        if not isinstance(stage, Mapping):
            continue
        name = stage.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append(((
                    "stages", index, "name"), name,
                    f"is also the name of stages[{seen[name]}]; stage names must be unique", "rollouts",
                ))
            seen.setdefault(name, index)
        try:
            percent = parse_percent(stage.get("percent", 0))
        except ValueError:
            percent = None  # reported by the field itself
        if percent is not None:
            if highest is not None and percent < highest[0]:
                problems.append((
                    ("stages", index, "percent"), stage.get("percent", 0),
                    f"is lower than stages[{highest[1]}] ({highest[0]:g}%); percentages never go "
                    "down within a rollout (a rollback does that)", "rollouts",
                ))
            else:
                highest = (percent, index)
        if data.get("flag") is None:
            for key in ("groups", "allow"):
                if stage.get(key):
                    problems.append((
                        ("stages", index, key), stage[key],
                        f"a stage's {key} is a flag audience, but this rollout has no flag "
                        '(add flag = "NAME")', "rollouts",
                    ))
    return problems


def _raise(problems: Sequence[_Problem]) -> None:
    """Raise every problem at its own location, keeping pydantic's error types."""
    if problems:
        raise ValidationError.from_exception_data("rollouts", [
            InitErrorDetails(
                type=PydanticCustomError(kind, "{message}", {"message": message.removeprefix("Value error, ")}),
                loc=loc, input=value,
            )
            for loc, value, message, kind in problems
        ])
