"""Evaluation metrics from per-example predictions, each with a 95% interval.

The Evaluator scores the test split with the candidate (and the baseline) model, then computes
every metric overall and per slice here, in numpy. Intervals come from one Poisson bootstrap:
each resample weighs every test example by a Poisson(1) count, the same weights for every slice
and both models. So an interval is a percentile of the metric over the resamples, and a
difference (candidate minus baseline on the same rows; a group minus overall) is a percentile of
the differences: a paired comparison, which is far narrower than two separate intervals when
the two are correlated. AUC under weights is computed from one sort of the scores, so a
thousand resamples of 60,000 examples take seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline import names

RESAMPLES = 1000
CONFIDENCE = 0.95
CHUNK_CELLS = 4_000_000  # weights held at once: resamples per chunk x examples
METHOD = "Poisson bootstrap, percentile intervals"
# Metrics with an interval, in the order reports show them; example_count is exact.
ESTIMATED = (
    "auc",
    "binary_accuracy",
    "calibration",
    *names.THRESHOLD_METRICS.values(),
    *(
        names.at_threshold(names.THRESHOLD_METRICS[m], t)
        for t in names.FIXED_THRESHOLDS
        for m in names.FIXED_THRESHOLD_METRICS
    ),
)


@dataclass(frozen=True)
class Estimate:
    """A metric's value on the rows as they are, and its 95% interval (nan: undefined)."""

    value: float
    low: float
    high: float

    def as_list(self) -> list[float]:
        return [self.value, self.low, self.high]


def weights(examples: int, resamples: int = RESAMPLES, seed: int = 0) -> Iterator[np.ndarray]:
    """Poisson(1) weights, (resamples, examples), in chunks that fit in memory."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, min(resamples, CHUNK_CELLS // max(examples, 1)))
    for start in range(0, resamples, per_chunk):
        size = min(per_chunk, resamples - start)
        yield rng.poisson(1.0, size=(size, examples)).astype(np.float32)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    defined = denominator > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(defined, numerator / np.where(defined, denominator, 1), np.nan)


class Scored:
    """One model's scores on some rows (`rows`: their positions in the test split) with their
    labels: what every metric is computed from.

    Metrics take the test split's weights, shape (k, all rows): k resamples, or one row of ones
    for the value. The rows are kept in score order, so each call gathers its weights once.
    """

    def __init__(
        self, scores: np.ndarray, labels: np.ndarray, rows: np.ndarray, threshold: float
    ) -> None:
        order = np.argsort(scores[rows], kind="stable")
        self.rows = rows[order]
        sorted_scores = np.asarray(scores[self.rows], dtype=np.float64)
        self.positive = np.asarray(labels[self.rows], dtype=np.float32)
        self.threshold = threshold
        # Start of each run of equal scores: ties count half in the AUC.
        self._groups = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        # Columns for one matrix product: labels, scores, and (label, flagged) at each threshold.
        thresholds = (0.5, threshold, *names.FIXED_THRESHOLDS)
        columns = [self.positive, sorted_scores.astype(np.float32)]
        for t in thresholds:
            flagged = (sorted_scores > t).astype(np.float32)  # flagged: above it, as the model
            columns += [self.positive * flagged, (1 - self.positive) * flagged]
        self._columns = np.stack(columns, axis=1)
        self._thresholds = thresholds

    def metrics(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Every ESTIMATED metric for each row of weights."""
        ws = w[:, self.rows]
        total = ws.sum(axis=1)
        sums = ws @ self._columns
        positives, score_sum = sums[:, 0], sums[:, 1]
        negatives = total - positives
        values = {"auc": self._auc(ws, positives, negatives)}
        values["calibration"] = _ratio(score_sum, positives)
        at = {}
        for index, t in enumerate(self._thresholds):
            tp, fp = sums[:, 2 + 2 * index], sums[:, 3 + 2 * index]
            at[t] = (tp, fp, positives - tp, negatives - fp)  # tp, fp, fn, tn
        tp, fp, fn, tn = at[0.5]
        values["binary_accuracy"] = _ratio(tp + tn, total)
        tp, fp, fn, tn = at[self.threshold]
        values.update(
            precision=_ratio(tp, tp + fp),
            recall=_ratio(tp, positives),
            fpr=_ratio(fp, negatives),
            fnr=_ratio(fn, positives),
        )
        for t in names.FIXED_THRESHOLDS:
            tp, fp, _, _ = at[t]
            values[names.at_threshold("precision", t)] = _ratio(tp, tp + fp)
            values[names.at_threshold("recall", t)] = _ratio(tp, positives)
        return values

    def _auc(self, ws: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
        """Weighted Mann-Whitney AUC: P(score of a disputed > score of an undisputed)."""
        group_total = np.add.reduceat(ws, self._groups, axis=1)
        group_positive = np.add.reduceat(ws * self.positive, self._groups, axis=1)
        group_negative = group_total - group_positive
        below = np.cumsum(group_negative, axis=1) - group_negative  # negatives scored lower
        wins = np.sum(group_positive * (below + 0.5 * group_negative), axis=1)
        return _ratio(wins, positives * negatives)


def interval(value: float, resampled: np.ndarray) -> Estimate:
    """The value and the percentile interval of its resamples (nan when too few are defined)."""
    defined = resampled[~np.isnan(resampled)]
    if np.isnan(value) or len(defined) < 0.9 * len(resampled):
        return Estimate(float(value), float("nan"), float("nan"))
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(defined, [tail, 100 - tail])
    return Estimate(float(value), float(low), float(high))


@dataclass
class SliceResult:
    examples: int
    estimates: dict[str, Estimate]


def evaluate_slices(
    scores: np.ndarray,
    labels: np.ndarray,
    slices: dict[str, np.ndarray],
    threshold: float,
    baseline_scores: np.ndarray | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
    """Every metric of every slice (name -> row mask; names.OVERALL is all rows) with intervals,
    each slice's gap to overall, and candidate minus baseline, all from one set of resamples.

    Returns {"slices": {name: SliceResult}, "gaps": {name: {metric: Estimate}},
    "baseline": {name: SliceResult} | None, "difference": {name: {metric: Estimate}} | None}.
    """
    masks = {names.OVERALL: np.ones(len(labels), bool), **slices}
    models = {"candidate": scores} if baseline_scores is None else {
        "candidate": scores, "baseline": baseline_scores,
    }  # fmt: skip
    scored = {
        (model, name): Scored(model_scores, labels, np.flatnonzero(mask), threshold)
        for model, model_scores in models.items()
        for name, mask in masks.items()
    }
    ones = np.ones((1, len(labels)), np.float32)
    point = {key: s.metrics(ones) for key, s in scored.items()}
    draws: dict[tuple, dict[str, list]] = {key: {m: [] for m in ESTIMATED} for key in scored}
    for w in weights(len(labels), resamples, seed):
        for key, s in scored.items():
            for metric, values in s.metrics(w).items():
                draws[key][metric].append(values)
    stacked = {key: {m: np.concatenate(v) for m, v in d.items()} for key, d in draws.items()}

    def result(model: str, name: str) -> SliceResult:
        key = (model, name)
        estimates = {m: interval(point[key][m][0], stacked[key][m]) for m in ESTIMATED}
        return SliceResult(int(masks[name].sum()), estimates)

    def paired(a: tuple, b: tuple) -> dict[str, Estimate]:
        return {
            m: interval(point[a][m][0] - point[b][m][0], stacked[a][m] - stacked[b][m])
            for m in ESTIMATED
        }

    found = {
        "slices": {name: result("candidate", name) for name in masks},
        "gaps": {
            name: paired(("candidate", name), ("candidate", names.OVERALL)) for name in slices
        },
        "baseline": None,
        "difference": None,
    }
    if baseline_scores is not None:
        found["baseline"] = {name: result("baseline", name) for name in masks}
        found["difference"] = {
            name: paired(("candidate", name), ("baseline", name)) for name in masks
        }
    return found
