"""`conn check`: validate the config, report every problem at once, and print each rollout
criterion's worst-case detection time.

The detection budget is the figure the rollout panel shows beside each
criterion (:func:`console.engine.rollouts.detection_budget`): how long a bad
canary can live before the criterion starts its rollback. A rollout's
``max_detection`` is a promise; a rollback criterion that cannot keep it is a
problem like any other (exit 1), named with its key, its budget and the limit.
So is a gate that can never pass: a ``min_samples`` more than the canary's
probes can give within a criterion's window makes every verdict "no data".
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from console.cli.common import add_config_option
from console.config import ConnConfig, criteria_of, load_config
from console.engine.rollouts import detection_budget
from console.errors import ConfigError
from console.model.gates import parse_criterion, span_text
from console.model.history import SLICE_SECONDS
from console.model.live import WINDOWS
from console.model.rollout_config import RolloutConfig
from console.model.text import plural


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "check",
        help="validate the config (every problem with its key); print each rollout criterion's "
             "worst-case detection time",
    )
    add_config_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        config, path = load_config(args.config)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    lines: list[str] = []
    problems: list[str] = []
    for name, rollout in config.rollouts.items():
        lines += _budget_lines(config, name, rollout, problems)
        problems += _sample_problems(config, name, rollout)
    if problems:
        for line in lines:
            print(line)
        print(str(ConfigError(f"{path}: {plural(len(problems), 'problem')}", problems)), file=sys.stderr)
        return 1
    flags = len(config.flags.define)
    print(
        f"{path}: ok — environment {config.environment!r}, "
        f"{plural(len(config.services), 'service')}, {plural(flags, 'flag')}, "
        + (f"{plural(len(config.rollouts), 'rollout')}, " if config.rollouts else "")
        + f"store {config.store}"
    )
    for line in lines:
        print(line)
    return 0


def _policy(rollout: RolloutConfig, key: str) -> str:
    return rollout.abort.on_fail if key.startswith("abort.") else rollout.gate.on_fail


def _budget_lines(config: ConnConfig, name: str, rollout: RolloutConfig, problems: list[str]) -> list[str]:
    """The rollout's criteria with their budgets; a rollback criterion past ``max_detection`` is a problem."""
    limit = rollout.max_detection
    against = f" (baseline {rollout.baseline})" if rollout.baseline else ""
    promise = f", max detection {span_text(limit)}" if limit is not None else ""
    lines = [f"rollout {name}: {rollout.canary}{against}{promise}"]
    keyed = criteria_of(rollout)
    if not keyed:
        lines.append("  (no criteria: it advances by hand and rolls back by hand)")
    units = {key: spec.unit for key, spec in config.services[rollout.canary].signals.items()}
    width = max((len(text) for _, text in keyed), default=0)
    for key, text in keyed:
        seconds, described = detection_budget(config, rollout, parse_criterion(text, units=units))
        policy = _policy(rollout, key)
        lines.append(f"  {key:<20} {text:<{width}}  {policy:<8}  {described}")
        if policy == "rollback" and limit is not None and seconds > limit:
            problems.append(
                f"rollouts.{name}.{key}: {text!r} can take {described} to start a rollback, "
                f"longer than max_detection ({span_text(limit)}): shorten its window, probe more "
                "often, lower the grace, or raise max_detection"
            )
    return lines


def _sample_problems(config: ConnConfig, name: str, rollout: RolloutConfig) -> list[str]:
    """Gate criteria whose window cannot hold ``min_samples`` probe outcomes: only ever no data."""
    interval = config.services[rollout.canary].interval
    minimum = rollout.gate.min_samples
    short: dict[float, list[str]] = {}
    for key, text in criteria_of(rollout):
        if key.startswith("abort."):
            continue  # abort criteria are judged without min_samples
        criterion = parse_criterion(text)
        window = criterion.seconds if criterion.window else WINDOWS["1m"]
        # The window is rounded out to whole slices; one probe per interval at most.
        if _most(window, interval) < minimum:
            short.setdefault(window, []).append(repr(text))
    return [
        f"rollouts.{name}.gate.min_samples: {minimum} probe outcomes can never be had within "
        f"{span_text(window)} at a {span_text(interval)} probe interval ({rollout.canary}; at most "
        f"{_most(window, interval)}), so {', '.join(texts)} would only ever be no data: lower "
        "min_samples or probe more often"
        for window, texts in sorted(short.items())
    ]


def _most(window: float, interval: float) -> int:
    return math.floor((window + SLICE_SECONDS) / interval) + 1
