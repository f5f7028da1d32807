"""What a run did, for people: the per-component table, the eval metrics, the push."""

from __future__ import annotations

from dataclasses import dataclass, field

import ml_metadata as mlmd

from pipeline import artifacts, lineage


@dataclass
class RunReport:
    run_id: str
    executions: list[lineage.ExecutionRecord]
    overall_metrics: dict[str, float]
    blessed: bool | None
    pushed_to: str | None
    baseline_auc: float | None = None
    refusals: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"Run {self.run_id}", ""]
        lines.append(
            format_table(
                ["component", "state", "cached/executed", "seconds"],
                [
                    [e.node_id, e.state, "cached" if e.cached else "executed", f"{e.seconds:.1f}"]
                    for e in self.executions
                ],
            )
        )
        lines.append("")
        if self.overall_metrics:
            lines.append("Eval metrics (overall slice):")
            lines += [f"  {name}: {value:.4f}" for name, value in self.overall_metrics.items()]
        if self.baseline_auc is not None:
            lines.append(f"  baseline (last blessed model) auc: {self.baseline_auc:.4f}")
        blessing = {True: "yes", False: "no", None: "not evaluated"}[self.blessed]
        lines.append(f"Blessed: {blessing}")
        lines += [f"  refused: {reason}" for reason in self.refusals]
        lines.append(f"Pushed to: {self.pushed_to or 'nothing pushed'}")
        return "\n".join(lines)


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with columns padded to their widest cell."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells):
        return "  ".join(
            str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def failure_report(store: mlmd.MetadataStore, run_id: str) -> str:
    """Why a run stopped: the data gate's findings in words, or which component failed."""
    from pipeline import gates

    lines = []
    for record in lineage.run_executions(store, run_id):
        if record.state != "FAILED":
            continue
        if record.node_id == "DataValidationGate":
            inputs = lineage.run_inputs(store, record.execution.id)
            previous = inputs.get("previous_statistics", [])
            problems = gates.data_problems(
                inputs["anomalies"][0].uri,
                inputs["statistics"][0].uri,
                inputs["schema"][0].uri,
                previous[0].uri if previous else None,
            )
            lines.append(gates.explain(problems))
        else:
            lines.append(f"{record.node_id} failed.")
    return "\n".join(lines)


def run_report(store: mlmd.MetadataStore, run_id: str) -> RunReport:
    """Collect the table, metrics, blessing and push destination of one run."""
    executions = lineage.run_executions(store, run_id)
    report = RunReport(run_id, executions, {}, None, None)
    for record in executions:
        outputs = lineage.run_outputs(store, record.execution.id)
        if "evaluation" in outputs:
            evaluation_uri = outputs["evaluation"][0].uri
            report.overall_metrics = artifacts.overall_metrics(evaluation_uri)
            if lineage.run_inputs(store, record.execution.id).get("baseline_model"):
                baseline = artifacts.slice_metrics(evaluation_uri, model="baseline")
                report.baseline_auc = baseline.get(artifacts.OVERALL, {}).get("auc")
            report.refusals = artifacts.validation_failures(evaluation_uri)
        if "blessing" in outputs:
            blessing = outputs["blessing"][0]
            report.blessed = blessing.custom_properties["blessed"].int_value == 1
        if "pushed_model" in outputs:
            pushed = outputs["pushed_model"][0]
            if pushed.custom_properties["pushed"].int_value == 1:
                report.pushed_to = pushed.custom_properties["pushed_destination"].string_value
    return report
