"""Detection budget: how long a bad canary can live before a criterion starts its rollback.

``conn check`` prints it beside each criterion and fails when a rollback
criterion's worst case exceeds the rollout's ``max_detection``; the rollout
panel shows it on each criterion's row. One formula, documented in
:func:`worst_case_detection`, so the figure on screen and the check agree.
"""

from __future__ import annotations

from console.model.gates_parse import HEALTH_FAILURES, Criterion, span_text
from console.model.live import WINDOWS, SignalSource


def detection_terms(
    criterion: Criterion,
    *,
    probe_interval: float,
    evaluation_interval: float,
    source_interval: float | None = None,
    source: SignalSource | None = None,
    window: float = WINDOWS["1m"],
    failure_limit: int = 1,
    grace: float = 0.0,
) -> tuple[tuple[str, float], ...]:
    """The parts of :func:`worst_case_detection`, in order, as (label, seconds); zero parts left out."""
    if source is None:
        source = "prometheus" if source_interval is not None else "probe"
    terms: list[tuple[str, float]] = []
    if criterion.signal != HEALTH_FAILURES:
        if source == "prometheus":
            if source_interval is None:
                raise ValueError("a Prometheus signal needs its source_interval")
            terms.append(("Prometheus", source_interval))
        elif source == "probe":
            terms.append(("window", window))
    if criterion.window is not None:
        terms.append((criterion.window, criterion.seconds))
    if criterion.signal == HEALTH_FAILURES or source != "prometheus":
        terms.append(("probe", probe_interval))
    label = "evaluation" if failure_limit == 1 else f"evaluations ({failure_limit} × {span_text(evaluation_interval)})"
    terms.append((label, failure_limit * evaluation_interval))
    terms.append(("grace", grace))
    return tuple((name, seconds) for name, seconds in terms if seconds > 0)


def worst_case_detection(
    criterion: Criterion,
    *,
    probe_interval: float,
    evaluation_interval: float,
    source_interval: float | None = None,
    source: SignalSource | None = None,
    window: float = WINDOWS["1m"],
    failure_limit: int = 1,
    grace: float = 0.0,
) -> float:
    """Worst-case seconds from a canary going bad to its rollback starting, by this criterion.

    ``seen + for + within + evaluations + grace``, where

    * seen: when the signal can first show it.
      The prober's windowed values (p50/p95/p99, error_rate over the 1m
      ``window``): one ``probe_interval`` for the first bad probe, plus the
      ``window``, since a percentile or rate just past its level needs the
      whole window of bad probes. A health-JSON value (``source="health-json"``):
      one ``probe_interval``, read by the next probe. A Prometheus value
      (``source_interval`` given, or ``source="prometheus"``): one
      ``source_interval``, the next query round (Prometheus's own scrape
      interval and the query's range are outside Conn and not counted).
      ``health_failures``: one ``probe_interval``; each failed probe counts at once.
    * for D: the condition must then hold D.
    * within D: a count must accumulate; modelled as the whole window D,
      the worst case of a canary bad enough to reach the count at all (its
      failures or increments arriving evenly, the last at the window's end).
      A canary failing every probe is caught sooner, after
      ``count × probe_interval``.
    * evaluations: ``failure_limit × evaluation_interval`` (the first
      evaluation after the value shows it, and each further one the limit waits for).
    * grace: the countdown before an automatic rollback.

    A slow canary stretches the probe interval by its response time (the next
    probe starts an interval after the previous ends): pass
    ``interval + timeout`` to count that.

    Args:
        source: where the signal's value comes from (``SignalValue.source``);
            by default the prober's window, or Prometheus when ``source_interval`` is given.
        source_interval: the Prometheus query interval.
        window: the prober's window behind p50/p95/p99 and error_rate.
        failure_limit: consecutive failing evaluations before the rollout acts.
        grace: the rollout's countdown before an automatic rollback.
    """
    terms = detection_terms(
        criterion, probe_interval=probe_interval, evaluation_interval=evaluation_interval,
        source_interval=source_interval, source=source, window=window,
        failure_limit=failure_limit, grace=grace,
    )
    return sum(seconds for _, seconds in terms)


def describe_budget(
    criterion: Criterion,
    *,
    probe_interval: float,
    evaluation_interval: float,
    source_interval: float | None = None,
    source: SignalSource | None = None,
    window: float = WINDOWS["1m"],
    failure_limit: int = 1,
    grace: float = 0.0,
) -> str:
    """:func:`worst_case_detection` with its parts: "≤ 6m 2s (1m window + 5m for + 1s probe + 1s evaluation)"."""
    terms = detection_terms(
        criterion, probe_interval=probe_interval, evaluation_interval=evaluation_interval,
        source_interval=source_interval, source=source, window=window,
        failure_limit=failure_limit, grace=grace,
    )
    total = sum(seconds for _, seconds in terms)
    parts = " + ".join(
        label if label.startswith("evaluations") else f"{span_text(seconds)} {label}"
        for label, seconds in terms
    )
    return f"≤ {span_text(total)} ({parts})"
