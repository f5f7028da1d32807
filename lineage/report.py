"""What a run did, for people: the per-component table, the eval metrics, the push."""

from __future__ import annotations

from dataclasses import dataclass, field

import ml_metadata as mlmd

from cli.tables import format_table
from lineage import schema_diff
from lineage.queries import RunSummary, run_summary
from pipeline import names
from pipeline.components import fairness
from pipeline.metadata import evaluations, store


@dataclass
class Evaluation:
    """The Evaluator's verdict in a run: overall metrics with intervals, the blessing's reasons
    and refusals, fairness."""

    overall: dict[str, list] = field(default_factory=dict)  # metric -> [value, low, high]
    method: str = ""
    reasons: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    fairness: fairness.FairnessReport | None = None
    schema_changes: list[schema_diff.SchemaChange] | None = None


def run_evaluation(mlmd_store: mlmd.MetadataStore, summary: RunSummary) -> Evaluation:
    """Read the run's evaluation artifact, if its Evaluator ran or was reused."""
    evaluation = Evaluation()
    for record in summary.executions:
        outputs = store.run_outputs(mlmd_store, record.execution.id)
        if "evaluation" not in outputs:
            continue
        uri = outputs["evaluation"][0].uri
        evaluation.overall = evaluations.slice_estimates(uri).get(names.OVERALL, {})
        found = evaluations.load_evaluation(uri)
        if found is not None:
            evaluation.method, evaluation.reasons = found.method, found.reasons
        evaluation.refusals = evaluations.refusals(uri)
        evaluation.fairness = fairness.load_report(uri)
        if evaluation.fairness is not None:
            evaluation.refusals += evaluation.fairness.refusals
    return evaluation


def threshold_lines(metrics: dict[str, list], threshold: float | None) -> list[str]:
    """Precision and recall at the decision threshold and at the fixed ones, FPR and FNR, and
    calibration, each with its interval."""
    if threshold is None:
        return []

    def shown(name: str) -> str:
        return fairness.estimate_text(metrics.get(name), digits=4)

    lines = [f"Decision threshold: {threshold:.4f}"]
    at = [(f"{threshold:.4f} (the model's)", "precision", "recall")]
    at += [
        (f"{t:g}", names.at_threshold("precision", t), names.at_threshold("recall", t))
        for t in names.FIXED_THRESHOLDS
    ]
    for label, precision, recall in at:
        if precision in metrics or recall in metrics:
            lines.append(f"  at {label}: precision {shown(precision)}, recall {shown(recall)}")
    if "fpr" in metrics:
        lines.append(
            f"  at the model's: false positive rate {shown('fpr')}, "
            f"false negative rate {shown('fnr')}"
        )
    if "calibration" in metrics:
        lines.append(
            f"  calibration (mean prediction / mean label, 1 is calibrated): {shown('calibration')}"
        )
    return lines


def format_run(summary: RunSummary, evaluation: Evaluation) -> str:
    """The runner's closing summary."""
    lines = [f"Run {summary.run_id}", ""]
    lines.append(
        format_table(
            ["component", "state", "cached/executed", "seconds"],
            [
                [e.node_id, e.state, "cached" if e.cached else "executed", f"{e.seconds:.1f}"]
                for e in summary.executions
            ],
        )
    )
    lines.append("")
    if evaluation.schema_changes is not None:
        lines.append(
            "Schema difference (inferred vs curated): "
            + schema_diff.one_line(evaluation.schema_changes)
        )
    if evaluation.overall:
        lines.append(f"Test metrics (overall slice; 95% intervals: {evaluation.method}):")
        for name in ("example_count", "auc", "binary_accuracy"):
            if name in evaluation.overall:
                value = evaluation.overall[name]
                shown = (
                    fairness.estimate_text(value, digits=4) if name != "example_count" else value
                )
                lines.append(f"  {name}: {shown}")
    report = evaluation.fairness
    lines += threshold_lines(evaluation.overall, report and report.threshold)
    if report is not None:
        lines.append(fairness.format_report(report))
    blessing = {True: "yes", False: "no", None: "not evaluated"}[summary.blessed]
    lines.append(f"Blessed: {blessing}")
    lines += [f"  refused: {reason}" for reason in evaluation.refusals]
    lines += [f"  {reason}" for reason in evaluation.reasons if summary.blessed]
    if summary.pushed_to:
        lines.append(f"Pushed to: {summary.pushed_to}")
    elif summary.reused_push:
        lines.append(f"Pushed to: {summary.reused_push} (reused from the cache)")
    else:
        lines.append("Pushed to: nothing pushed")
    return "\n".join(lines)


def run_report(mlmd_store: mlmd.MetadataStore, run_id: str) -> str:
    """The table, metrics, blessing and push destination of one run, as text."""
    summary = run_summary(mlmd_store, run_id)
    evaluation = run_evaluation(mlmd_store, summary)
    evaluation.schema_changes = schema_diff.run_difference(mlmd_store, run_id)
    return format_run(summary, evaluation)


def failure_report(mlmd_store: mlmd.MetadataStore, run_id: str) -> str:
    """Why a run stopped: the data gate's findings in words, or which component failed."""
    from pipeline.components import data_validation

    lines = []
    for record in store.run_executions(mlmd_store, run_id):
        if record.state != "FAILED":
            continue
        if record.node_id == names.DATA_GATE:
            inputs = store.run_inputs(mlmd_store, record.execution.id)
            previous = inputs.get("previous_statistics", [])
            problems = data_validation.data_problems(
                inputs["anomalies"][0].uri,
                inputs["statistics"][0].uri,
                inputs["schema"][0].uri,
                previous[0].uri if previous else None,
            )
            lines.append(data_validation.explain(problems))
        else:
            lines.append(f"{record.node_id} failed.")
    return "\n".join(lines)
