"""The A/B report's numbers: metrics per arm, the comparison of candidate with control, and the
decision rule, all with the Evaluator's Poisson bootstrap (pipeline/components/metrics.py).

The rule (docs/ab-testing.md): d = AUC(candidate) - AUC(control) with its 95% interval, paired
on shadowed complaints when the candidate scored copies of the control's requests (both
versions on the same rows: far narrower), else between the two arms' own complaints. With at
least --min-outcomes behind it, promote when the whole interval is above -max_auc_drop, roll
back when the whole interval is below it, else keep testing. The outcomes still needed come
from the observed variance: an interval's half-width shrinks as 1/sqrt(n), so the half-width
w on the side facing the boundary becomes |d + max_auc_drop| after n * (w / |d + drop|)^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from monitoring.ab_log import Logged
from pipeline import names
from pipeline.components import metrics

PROMOTE, ROLL_BACK, KEEP_TESTING = "promote", "roll back", "keep testing"
SHOWN = ("auc", "calibration", "precision", "recall")  # per arm, each with its interval


@dataclass(frozen=True)
class Rule:
    max_auc_drop: float = 0.02
    min_outcomes: int = 100
    resamples: int = metrics.RESAMPLES
    seed: int = 0


@dataclass
class Arm:
    """One arm's rows: the label and version that answered (or shadowed) them."""

    label: str | None
    version: int
    shadow: bool
    requests: int = 0
    complaints: int = 0  # distinct complaint ids among its rows
    outcomes: int = 0  # of those, with an outcome and a probability: what its metrics use
    dispute_rate: float | None = None
    mean_probability: float | None = None
    threshold: float | None = None
    threshold_source: str = ""
    latency_p50: float | None = None
    latency_p99: float | None = None
    metrics: dict[str, list[float]] = field(default_factory=dict)  # name: [value, low, high]

    @property
    def name(self) -> str:
        role = "shadow" if self.shadow else "served"
        return f"{self.label or '(no label)'} v{self.version} {role}"


@dataclass
class Comparison:
    kind: str  # "paired" (shadowed complaints) or "unpaired" (each arm its own)
    outcomes: int  # pairs with an outcome, or both arms' outcomes together
    control_auc: float
    candidate_auc: float
    difference: list[float]  # candidate - control: [value, low, high]


@dataclass
class Verdict:
    decision: str
    reason: str
    needed: int | None = None  # outcomes still needed (keep testing), when it can be told
    basis: str | None = None  # which comparison decided


def _latest(rows: list[Logged], labels: dict[str, int]) -> dict[str, Logged]:
    """Per complaint with an outcome, its latest scored row (a complaint asked twice counts
    once, as in the feedback loop)."""
    found: dict[str, Logged] = {}
    for row in rows:
        if row.complaint_id in labels and row.probability is not None:
            found[row.complaint_id] = row  # rows come oldest first
    return found


def inferred_threshold(rows: list[Logged]) -> float | None:
    """The highest score the version logged as not disputed: `disputed` is score > threshold,
    so flagging above it reproduces every logged decision."""
    kept = [r.probability for r in rows if r.decision == 0 and r.probability is not None]
    flagged = [r.probability for r in rows if r.decision == 1 and r.probability is not None]
    if kept:
        return float(max(kept))
    return float(min(flagged)) - 1e-6 if flagged else None


def describe_arm(
    arm: Arm, rows: list[Logged], labels: dict[str, int], threshold: tuple[float, str] | None,
    rule: Rule,
) -> Arm:  # fmt: skip
    arm.requests = len(rows)
    arm.complaints = len({r.complaint_id for r in rows if r.complaint_id is not None})
    latencies = np.array([r.latency_ms for r in rows], float)
    if len(latencies):
        arm.latency_p50, arm.latency_p99 = (float(v) for v in np.percentile(latencies, [50, 99]))
    if threshold is None and (found := inferred_threshold(rows)) is not None:
        threshold = (found, "logged decisions")
    arm.threshold, arm.threshold_source = threshold or (0.5, "0.5: none logged")
    joined = _latest(rows, labels)
    arm.outcomes = len(joined)
    if not joined:
        return arm
    scores = np.array([r.probability for r in joined.values()], np.float64)
    truth = np.array([labels[c] for c in joined], np.float64)
    arm.dispute_rate, arm.mean_probability = float(truth.mean()), float(scores.mean())
    found = metrics.evaluate_slices(
        scores, truth, {}, arm.threshold, resamples=rule.resamples, seed=rule.seed
    )["slices"][names.OVERALL].estimates
    arm.metrics = {name: found[name].as_list() for name in SHOWN}
    return arm


def paired(
    primary: list[Logged], shadow: list[Logged], control: int, candidate: int,
    labels: dict[str, int], rule: Rule,
) -> Comparison | None:  # fmt: skip
    """Candidate minus control on complaints both scored: one served, the other shadowed
    (either way round), matched by request id and instance."""
    served = {(r.request_id, r.instance): r for r in primary}
    pairs: dict[str, tuple[float, float]] = {}  # complaint -> (control, candidate), latest
    for copy in shadow:
        original = served.get((copy.request_id, copy.instance))
        if original is None or copy.complaint_id not in labels:
            continue
        if original.probability is None or copy.probability is None:
            continue
        versions = (original.version, copy.version)
        if versions == (control, candidate):
            pairs[copy.complaint_id] = (original.probability, copy.probability)
        elif versions == (candidate, control):
            pairs[copy.complaint_id] = (copy.probability, original.probability)
    if not pairs:
        return None
    truth = np.array([labels[c] for c in pairs], np.float64)
    control_scores = np.array([p[0] for p in pairs.values()], np.float64)
    candidate_scores = np.array([p[1] for p in pairs.values()], np.float64)
    found = metrics.evaluate_slices(
        candidate_scores, truth, {}, 0.5, control_scores, rule.resamples, rule.seed
    )
    overall = names.OVERALL
    return Comparison(
        "paired",
        len(pairs),
        found["baseline"][overall].estimates["auc"].value,
        found["slices"][overall].estimates["auc"].value,
        found["difference"][overall]["auc"].as_list(),
    )


def unpaired(
    control: list[Logged], candidate: list[Logged], labels: dict[str, int], rule: Rule
) -> Comparison | None:
    """Candidate minus control, each arm on its own complaints: every row has its own Poisson
    weight, so the two arms are resampled independently."""
    a, b = _latest(candidate, labels), _latest(control, labels)
    if not a or not b:
        return None
    scores = np.array([r.probability for r in [*a.values(), *b.values()]], np.float64)
    truth = np.array([labels[c] for c in [*a, *b]], np.float64)
    first = metrics.Scored(scores, truth, np.arange(len(a)), 0.5)
    second = metrics.Scored(scores, truth, np.arange(len(a), len(scores)), 0.5)
    ones = np.ones((1, len(scores)), np.float32)
    candidate_auc, control_auc = first.metrics(ones)["auc"][0], second.metrics(ones)["auc"][0]
    draws = [
        first.metrics(w)["auc"] - second.metrics(w)["auc"]
        for w in metrics.weights(len(scores), rule.resamples, rule.seed)
    ]
    difference = metrics.interval(candidate_auc - control_auc, np.concatenate(draws))
    return Comparison(
        "unpaired", len(scores), float(control_auc), float(candidate_auc), difference.as_list()
    )


def outcomes_needed(comparison: Comparison, margin: float) -> int | None:
    """More outcomes for the interval to leave -margin, if the difference and its variance
    hold: the half-width facing the boundary shrinks as 1/sqrt(n). None: d sits on it."""
    d, low, high = comparison.difference
    gap = abs(d + margin)
    width = d - low if d > -margin else high - d
    if gap < 1e-9 or not math.isfinite(width):
        return None
    total = comparison.outcomes * (width / gap) ** 2
    return max(1, math.ceil(total - 1e-6) - comparison.outcomes)  # 9.000000000000002: 9


def decide(
    comparison: Comparison | None, control: Arm, candidates: list[Arm], rule: Rule
) -> Verdict:
    """The decision and its reason, by the rule in this module's docstring."""
    drop = rule.max_auc_drop
    short = [a for a in [control, *candidates] if a.outcomes < rule.min_outcomes]
    if comparison is None:
        missing = max((rule.min_outcomes - a.outcomes for a in [control, *candidates]), default=0)
        return Verdict(
            KEEP_TESTING,
            "no complaint with an outcome was scored by both versions yet "
            f"(control {control.outcomes}, candidate {sum(a.outcomes for a in candidates)} "
            "outcomes)",
            max(missing, rule.min_outcomes),
        )
    d, low, high = comparison.difference
    what = (
        f"AUC candidate - control {d:+.4f} [{low:+.4f}, {high:+.4f}] on "
        f"{comparison.outcomes:,} {comparison.kind} outcomes"
    )
    few = comparison.outcomes < rule.min_outcomes or (comparison.kind == "unpaired" and short)
    if few or not (math.isfinite(low) and math.isfinite(high)):
        arms = ", ".join(f"{a.name} {a.outcomes}" for a in [control, *candidates])
        missing = rule.min_outcomes - (
            comparison.outcomes
            if comparison.kind == "paired"
            else min(a.outcomes for a in [control, *candidates] if not a.shadow)
        )
        estimate = outcomes_needed(comparison, drop) if math.isfinite(low) else None
        return Verdict(
            KEEP_TESTING,
            f"too few outcomes to judge ({arms}; at least {rule.min_outcomes} each): {what}",
            max(missing, estimate or 0, 1),
            comparison.kind,
        )
    if low > -drop:
        return Verdict(
            PROMOTE,
            f"{what}: the whole interval is above -{drop:g}, so the candidate is not worse "
            f"than control by more than {drop:g}",
            basis=comparison.kind,
        )
    if high < -drop:
        return Verdict(
            ROLL_BACK,
            f"{what}: the whole interval is below -{drop:g}, so the candidate is worse than "
            f"control by more than {drop:g}",
            basis=comparison.kind,
        )
    needed = outcomes_needed(comparison, drop)
    more = (
        f"about {needed:,} more outcomes for the interval to leave -{drop:g}, if the "
        "difference and its variance hold"
        if needed is not None
        else "the difference sits on the boundary: more outcomes may never decide"
    )
    return Verdict(
        KEEP_TESTING, f"{what}: the interval contains -{drop:g}; {more}", needed, comparison.kind
    )
