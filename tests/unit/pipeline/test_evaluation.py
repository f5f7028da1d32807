"""The Evaluator's numbers: metrics against scikit-learn, intervals that cover the truth in a
simulation, a paired comparison that refuses a worse model and not an identical one, and a
fairness gate that does not refuse on noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from pipeline import names
from pipeline.components import fairness, metrics
from pipeline.components.evaluator import EvaluationSettings, judge


def scored_data(n: int, auc: float, seed: int, positives: float = 0.22):
    """Labels and binormal scores whose population AUC is `auc`: P(s+ > s-) = Phi(d / sqrt 2)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < positives).astype(float)
    shift = np.sqrt(2) * norm.ppf(auc)
    raw = rng.normal(0, 1, n) + shift * labels
    return 1 / (1 + np.exp(-raw)), labels  # into (0, 1), order kept


def test_metrics_match_scikit_learn_and_ties_count_half():
    scores, labels = scored_data(2000, 0.7, seed=1)
    scores = np.round(scores, 2)  # many ties
    found = metrics.Scored(scores, labels, np.arange(2000), 0.3).metrics(np.ones((1, 2000)))
    flagged = scores > 0.3
    assert found["auc"][0] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert found["precision"][0] == pytest.approx(precision_score(labels, flagged), abs=1e-6)
    assert found["recall"][0] == pytest.approx(recall_score(labels, flagged), abs=1e-6)
    assert found["fnr"][0] == pytest.approx(1 - recall_score(labels, flagged), abs=1e-6)
    assert found["fpr"][0] == pytest.approx(flagged[labels == 0].mean(), abs=1e-6)
    assert found["calibration"][0] == pytest.approx(scores.mean() / labels.mean(), rel=1e-5)
    assert found["binary_accuracy"][0] == pytest.approx(((scores > 0.5) == labels).mean())


def test_a_resample_weighs_rows_as_repeating_them_would():
    scores, labels = scored_data(500, 0.65, seed=2)
    weights = np.random.default_rng(3).poisson(1.0, (1, 500)).astype(np.float32)
    repeated = np.repeat(np.arange(500), weights[0].astype(int))
    found = metrics.Scored(scores, labels, np.arange(500), 0.3).metrics(weights)
    assert found["auc"][0] == pytest.approx(roc_auc_score(labels[repeated], scores[repeated]))


def test_auc_intervals_cover_the_true_auc_in_simulation():
    """200 data sets of 400 complaints with a known AUC of 0.65: about 95% must cover it."""
    covered = 0
    for seed in range(200):
        scores, labels = scored_data(400, 0.65, seed=seed)
        found = metrics.evaluate_slices(scores, labels, {}, 0.3, resamples=400, seed=seed)
        auc = found["slices"][names.OVERALL].estimates["auc"]
        covered += auc.low <= 0.65 <= auc.high
    assert 0.90 <= covered / 200 <= 0.98, covered


def verdict(candidate, baseline, labels, **settings):
    found = metrics.evaluate_slices(candidate, labels, {}, 0.3, baseline, resamples=500)
    return found, judge(found, EvaluationSettings(**settings))


def test_the_paired_comparison_refuses_a_clearly_worse_model_and_accepts_an_identical_one():
    scores, labels = scored_data(1000, 0.75, seed=4)
    found, (refusals, reasons) = verdict(scores, scores, labels)
    assert found["difference"][names.OVERALL]["auc"].as_list() == [0.0, 0.0, 0.0]
    assert refusals == [] and "not significantly worse" in reasons[-1]
    noise = np.random.default_rng(5).normal(0, 1.5, 1000)
    worse = 1 / (1 + np.exp(-(np.log(scores / (1 - scores)) + noise)))  # above the floor
    found, (refusals, _) = verdict(worse, scores, labels)
    difference = found["difference"][names.OVERALL]["auc"]
    assert difference.high < 0
    assert refusals == [
        f"auc changed by {fairness.estimate_text(difference.as_list(), True, 4)} against the "
        f"last blessed model ({found['baseline'][names.OVERALL].estimates['auc'].value:.4f}) on "
        "the same test rows: significantly worse, the whole 95% interval is below -0.0000"
    ]


def test_a_drop_within_the_noise_blesses_unless_the_comparison_is_strict():
    scores, labels = scored_data(1000, 0.7, seed=6)
    nudged = scores + np.random.default_rng(7).normal(0, 0.02, 1000)  # a hair worse, by chance
    found, (refusals, _) = verdict(nudged, scores, labels)
    difference = found["difference"][names.OVERALL]["auc"]
    assert difference.value < 0 < difference.high and refusals == []
    _, (strict_refusals, _) = verdict(nudged, scores, labels, strict_auc_comparison=True)
    assert len(strict_refusals) == 1 and "strict: by the estimate" in strict_refusals[0]


def test_the_floor_is_judged_on_the_point_estimate():
    scores, labels = scored_data(1000, 0.58, seed=8)
    found, (refusals, _) = verdict(scores, None, labels, min_auc=0.9)
    assert refusals and "is below the floor 0.9000" in refusals[0]
    assert found["difference"] is None


def gate_report(scores, labels, group_rows, gate):
    masks = {"tags: Servicemember": group_rows, "tags: ": ~group_rows}
    found = metrics.evaluate_slices(scores, labels, masks, 0.3, resamples=500)
    slices = {
        name: {"example_count": r.examples} | {m: e.as_list() for m, e in r.estimates.items()}
        for name, r in found["slices"].items()
    }
    gaps = {n: {m: e.as_list() for m, e in by.items()} for n, by in found["gaps"].items()}
    report = fairness.build_report(slices, gaps, ("tags",), gate.min_examples, 0.3, "bootstrap")
    return fairness.apply_gate(report, gate), gaps


def test_the_fairness_gate_refuses_only_a_significant_gap():
    gate = fairness.GateSettings(groups=("tags: Servicemember",), max_auc_gap=0.05)
    scores, labels = scored_data(3000, 0.75, seed=9)
    rng = np.random.default_rng(10)
    # 40 servicemembers the model ranks worse (AUC 0.62 against 0.75 overall): past the margin
    # by the estimate, but 40 examples cannot show it.
    small = np.zeros(3000, bool)
    small[:40] = True
    noisy, noisy_labels = scores.copy(), labels.copy()
    noisy[:40], noisy_labels[:40] = scored_data(40, 0.62, seed=21)
    report, gaps = gate_report(noisy, noisy_labels, small, gate)
    gap = gaps["tags: Servicemember"]["auc"]
    assert gap[0] < -0.05 < gap[2]  # the case this test is about
    assert report.refusals == []
    assert report.notes[0].startswith("fairness gate: tags: Servicemember auc ")
    assert report.notes[0].endswith(
        "past 0.0500 by its estimate but not significantly (the 95% interval reaches it), "
        "so not refused"
    )
    # 600 of them, scrambled: the whole interval is past the margin.
    large = np.zeros(3000, bool)
    large[:600] = True
    scrambled = scores.copy()
    scrambled[large] = rng.permutation(scores[large])
    report, gaps = gate_report(scrambled, labels, large, gate)
    assert gaps["tags: Servicemember"]["auc"][2] < -0.05
    assert len(report.refusals) == 1
    assert report.refusals[0].startswith("fairness: tags: Servicemember auc ")
    assert report.refusals[0].endswith("the whole 95% interval is past it")


def test_a_group_under_the_floor_is_listed_and_too_small_to_judge():
    gate = fairness.GateSettings(groups=("tags: Servicemember",), min_examples=20)
    scores, labels = scored_data(500, 0.7, seed=11)
    tiny = np.zeros(500, bool)
    tiny[:12] = True
    report, _ = gate_report(scores, labels, tiny, gate)
    assert report.hidden == [["tags: Servicemember", 12]]
    assert report.notes == [
        "fairness gate: tags: Servicemember too small to judge, 12 test example(s) "
        "(at least 20 needed)"
    ]
    assert report.refusals == []
