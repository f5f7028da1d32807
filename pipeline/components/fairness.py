"""Fairness: each group's metrics against the overall slice, small groups hidden, the gate.

The Evaluator (pipeline/components/evaluator.py) builds a FairnessReport from its per-slice
metrics, applies the optional fairness gate, and saves the report as fairness.json in its
evaluation output. The run summary, `python -m lineage trace`, the model card and the notebook
read that file (load_report) and show it with format_report / table_rows. No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

OVERALL = "Overall"
FAIRNESS_FILE = "fairness.json"
# What each group is compared on; gaps are the group's value minus the overall one.
FAIRNESS_METRICS = ("auc", "fpr", "fnr", "precision", "recall")
NO_VALUE = "(none)"  # how a group of complaints without a value (no tags, say) is named
GROUP_SEPARATOR = ";"  # group names hold commas ("tags: Older American, Servicemember")


@dataclass(frozen=True)
class GateSettings:
    """The optional fairness gate: off without groups."""

    groups: tuple[str, ...] = ()
    max_auc_gap: float = 0.05
    max_fnr_gap: float = 0.10
    min_examples: int = 100

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GateSettings:
        values = json.loads(text) if text else {}
        values["groups"] = tuple(values.get("groups", ()))
        return cls(**values)


def parse_groups(text: str) -> tuple[str, ...]:
    """'tags: Older American; tags: Servicemember' -> the two slice names."""
    return tuple(part.strip() for part in text.split(GROUP_SEPARATOR) if part.strip())


def display_name(slice_name: str) -> str:
    """A slice name as people read it: an empty value is '(none)'."""
    feature, _, value = slice_name.partition(": ")
    if slice_name == OVERALL:
        return slice_name
    return f"{feature}: {value or NO_VALUE}"


@dataclass
class FairnessReport:
    threshold: float | None = None
    min_examples: int = 100
    overall: dict[str, float] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)  # slice, examples, metrics, *_gap
    hidden: list[list] = field(default_factory=list)  # [slice, examples] under min_examples
    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FairnessReport:
        return cls(**json.loads(text))


def build_report(
    by_slice: dict[str, dict[str, float]],
    slice_keys: tuple[str, ...],
    min_examples: int,
    threshold: float | None = None,
) -> FairnessReport:
    """Rows for every slice of slice_keys with enough examples, gaps to the overall slice."""
    overall = by_slice.get(OVERALL, {})
    report = FairnessReport(threshold=threshold, min_examples=min_examples, overall=overall)
    for name, metrics in sorted(by_slice.items()):
        if name.partition(": ")[0] not in slice_keys:
            continue
        examples = int(metrics.get("example_count", 0))
        if examples < min_examples:
            report.hidden.append([display_name(name), examples])
            continue
        row: dict = {"slice": display_name(name), "examples": examples}
        for metric in FAIRNESS_METRICS:
            value, base = metrics.get(metric), overall.get(metric)
            row[metric] = value
            row[f"{metric}_gap"] = None if value is None or base is None else value - base
        report.rows.append(row)
    return report


def apply_gate(report: FairnessReport, gate: GateSettings) -> FairnessReport:
    """Refusals for each gated group whose AUC or FNR is worse than overall past its margin.

    A group absent or under min_examples cannot be judged: that is a note, not a refusal.
    """
    rows = {row["slice"]: row for row in report.rows}
    hidden = {name: count for name, count in report.hidden}
    for group in gate.groups:
        name = display_name(group)
        row = rows.get(name)
        if row is None:
            count = hidden.get(name, 0)
            report.notes.append(
                f"fairness gate: {name} not judged, {count} eval example(s) "
                f"(at least {report.min_examples} needed)"
            )
            continue
        auc_gap, fnr_gap = row.get("auc_gap"), row.get("fnr_gap")
        if auc_gap is not None and -auc_gap > gate.max_auc_gap:
            report.refusals.append(
                f"fairness: {name} auc {row['auc']:.4f} is {-auc_gap:.4f} below overall "
                f"{report.overall['auc']:.4f}; at most {gate.max_auc_gap:.4f} is allowed"
            )
        if fnr_gap is not None and fnr_gap > gate.max_fnr_gap:
            report.refusals.append(
                f"fairness: {name} fnr {row['fnr']:.4f} is {fnr_gap:.4f} above overall "
                f"{report.overall['fnr']:.4f}; at most {gate.max_fnr_gap:.4f} is allowed"
            )
    return report


def save_report(report: FairnessReport, directory: str) -> None:
    from tfx.dsl.io import fileio

    with fileio.open(os.path.join(directory, FAIRNESS_FILE), "w") as handle:
        handle.write(report.to_json())


def load_report(evaluation_uri: str) -> FairnessReport | None:
    """The fairness report of an Evaluator output; None for one made before it existed."""
    from tfx.dsl.io import fileio

    path = os.path.join(evaluation_uri, FAIRNESS_FILE)
    if not fileio.exists(path):
        return None
    with fileio.open(path, "r") as handle:
        return FairnessReport.from_json(handle.read())


def _number(value: float | None, signed: bool = False) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


TABLE_HEADER = ["slice", "examples", "auc", "auc gap", "fpr", "fpr gap", "fnr", "fnr gap"]
TABLE_HEADER += ["precision", "recall"]


def table_rows(report: FairnessReport) -> list[list[str]]:
    """The fairness table as text cells, overall first (for the summary, trace, notebook)."""
    overall = report.overall
    rows = [
        [OVERALL, str(int(overall.get("example_count", 0)))]
        + [cell for metric in ("auc", "fpr", "fnr") for cell in (_number(overall.get(metric)), "")]
        + [_number(overall.get("precision")), _number(overall.get("recall"))]
    ]
    for row in report.rows:
        cells = [row["slice"], str(row["examples"])]
        for metric in ("auc", "fpr", "fnr"):
            cells += [_number(row[metric]), _number(row[f"{metric}_gap"], signed=True)]
        rows.append(cells + [_number(row["precision"]), _number(row["recall"])])
    return rows


def hidden_note(report: FairnessReport) -> str:
    """Which slices are hidden for being small, or '' when none is."""
    if not report.hidden:
        return ""
    listed = ", ".join(f"{name} ({count})" for name, count in report.hidden)
    return (
        f"{len(report.hidden)} slice(s) under {report.min_examples} eval examples hidden: {listed}"
    )


def format_report(report: FairnessReport) -> str:
    """The fairness block of the run summary and of `python -m lineage trace`."""
    from cli.tables import format_table

    at = "" if report.threshold is None else f" at the decision threshold {report.threshold:.4f}"
    lines = [f"Fairness (gap: slice minus overall; fpr, fnr, precision, recall{at}):"]
    lines += ["  " + line for line in format_table(TABLE_HEADER, table_rows(report)).splitlines()]
    if note := hidden_note(report):
        lines.append(f"  {note}")
    lines += [f"  {note}" for note in report.notes]
    return "\n".join(lines)
