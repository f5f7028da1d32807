"""Fairness: each group's metrics and its gap to the overall slice, with 95% intervals; the gate.

The Evaluator builds a FairnessReport from its per-slice estimates (pipeline/components/
metrics.py: value and interval of each metric, and of each group's gap to overall, from the
same bootstrap resamples), applies the optional fairness gate, and saves the report as
fairness.json in its evaluation output. The run summary, `python -m lineage trace`, the model
card and the notebook read that file (load_report) and show it with format_report /
table_rows. Groups under min_examples are listed by name and count, not shown. No TensorFlow.

The gate refuses only what the data shows: a named group whose gap interval lies entirely past
the allowed gap. A gap past the margin by its point estimate but not significantly is a note.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from pipeline import names
from pipeline.metadata import files

OVERALL = names.OVERALL
NO_VALUE = "(none)"  # how a group of complaints without a value (no tags, say) is named
FAIRNESS_FILE = "fairness.json"
# What each group is compared on; gaps are the group's value minus the overall one.
FAIRNESS_METRICS = ("auc", "fpr", "fnr", "precision", "recall")
GROUP_SEPARATOR = ";"  # group names hold commas ("tags: Older American, Servicemember")
# A group needs this many test examples to be shown with its interval (--min-slice-examples):
# below it even the interval is unreliable, and the group is listed by name and count.
MIN_SLICE_EXAMPLES = 20


@dataclass(frozen=True)
class GateSettings:
    """The optional fairness gate: off without groups."""

    groups: tuple[str, ...] = ()
    max_auc_gap: float = 0.05
    max_fnr_gap: float = 0.10
    min_examples: int = MIN_SLICE_EXAMPLES

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
    """Values are [value, low, high] (a 95% interval); gaps are group minus overall."""

    threshold: float | None = None
    min_examples: int = MIN_SLICE_EXAMPLES
    method: str = ""
    overall: dict = field(default_factory=dict)  # metric -> [v, lo, hi]; example_count
    rows: list[dict] = field(default_factory=list)  # slice, examples, metric, metric_gap
    hidden: list[list] = field(default_factory=list)  # [slice, examples] under min_examples
    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FairnessReport:
        return cls(**json.loads(text))


def build_report(
    estimates: dict[str, dict],
    gaps: dict[str, dict],
    slice_keys: tuple[str, ...],
    min_examples: int,
    threshold: float | None = None,
    method: str = "",
) -> FairnessReport:
    """Rows for every slice of slice_keys with enough examples, from the Evaluator's estimates
    ({slice: {"example_count": n, metric: [v, lo, hi]}}) and gaps ({slice: {metric: [...]}})."""
    overall = estimates.get(OVERALL, {})
    report = FairnessReport(threshold, min_examples, method, overall={**overall})
    for name, metrics in sorted(estimates.items()):
        if name.partition(": ")[0] not in slice_keys:
            continue
        examples = int(metrics.get("example_count", 0))
        if examples < min_examples:
            report.hidden.append([display_name(name), examples])
            continue
        row: dict = {"slice": display_name(name), "examples": examples}
        for metric in FAIRNESS_METRICS:
            row[metric] = metrics.get(metric)
            row[f"{metric}_gap"] = gaps.get(name, {}).get(metric)
        report.rows.append(row)
    return report


def estimate_text(estimate: list | None, signed: bool = False, digits: int = 3) -> str:
    """'0.620 [0.580, 0.660]'; '-' when undefined; the interval left out when it is."""
    if not estimate or estimate[0] is None or estimate[0] != estimate[0]:
        return "-"
    sign = "+" if signed else ""
    value, low, high = (
        f"{x:{sign}.{digits}f}" if x is not None and x == x else ""
        for x in [*estimate, None, None][:3]
    )
    return f"{value} [{low}, {high}]" if low and high else value


def apply_gate(report: FairnessReport, gate: GateSettings) -> FairnessReport:
    """Refusals for each gated group significantly worse than overall past its margin.

    AUC: refused when the whole interval of the gap lies below -max_auc_gap; FNR: when it lies
    above max_fnr_gap. A group too small to judge, or past the margin within the noise, is a note.
    """
    rows = {row["slice"]: row for row in report.rows}
    hidden = {name: count for name, count in report.hidden}
    for group in gate.groups:
        name = display_name(group)
        row = rows.get(name)
        if row is None:
            report.notes.append(
                f"fairness gate: {name} too small to judge, {hidden.get(name, 0)} test "
                f"example(s) (at least {report.min_examples} needed)"
            )
            continue
        for metric, margin, worse in (("auc", gate.max_auc_gap, -1), ("fnr", gate.max_fnr_gap, 1)):
            gap = row.get(f"{metric}_gap")
            if not gap or gap[0] is None or gap[0] != gap[0]:
                continue
            past = [worse * x > margin for x in gap]  # value, low, high past the margin
            direction = "below" if worse < 0 else "above"
            what = (
                f"{name} {metric} {estimate_text(row[metric], digits=4)} is "
                f"{estimate_text([worse * gap[0], *sorted(worse * x for x in gap[1:])], digits=4)} "
                f"{direction} overall "
                f"{estimate_text(report.overall.get(metric), digits=4)}"
            )
            if all(past):  # nan bounds compare False: no interval, no refusal
                report.refusals.append(
                    f"fairness: {what}; at most {margin:.4f} is allowed, and the whole 95% "
                    "interval is past it"
                )
            elif past[0]:
                report.notes.append(
                    f"fairness gate: {what}: past {margin:.4f} by its estimate but not "
                    "significantly (the 95% interval reaches it), so not refused"
                )
    return report


def save_report(report: FairnessReport, directory: str) -> None:
    from tfx.dsl.io import fileio

    with fileio.open(os.path.join(directory, FAIRNESS_FILE), "w") as handle:
        handle.write(report.to_json())


def load_report(evaluation_uri: str) -> FairnessReport | None:
    """The fairness report of an Evaluator output; None for one made before it existed, or
    before reports had intervals."""
    path = os.path.join(evaluation_uri, FAIRNESS_FILE)
    if not files.exists(path):
        return None
    found = json.loads(files.read(path))
    if not isinstance(found.get("overall", {}).get("auc"), list):
        return None  # written before intervals: its numbers would be read wrongly
    return FairnessReport(**found)


TABLE_HEADER = ["slice", "examples", "auc [95%]", "auc gap [95%]", "fnr [95%]", "fnr gap [95%]"]
TABLE_HEADER += ["fpr", "precision", "recall"]


def table_rows(report: FairnessReport) -> list[list[str]]:
    """The fairness table as text cells, overall first (for the summary, trace, notebook)."""
    overall = report.overall
    rows = [
        [OVERALL, str(int(overall.get("example_count", 0)))]
        + [estimate_text(overall.get("auc")), "", estimate_text(overall.get("fnr")), ""]
        + [estimate_text((overall.get(m) or [None])[:1]) for m in ("fpr", "precision", "recall")]
    ]
    for row in report.rows:
        cells = [row["slice"], str(row["examples"])]
        for metric in ("auc", "fnr"):
            cells += [estimate_text(row[metric]), estimate_text(row[f"{metric}_gap"], True)]
        cells += [estimate_text((row[m] or [None])[:1]) for m in ("fpr", "precision", "recall")]
        rows.append(cells)
    return rows


def hidden_note(report: FairnessReport) -> str:
    """Which slices are left out for being small, or '' when none is."""
    if not report.hidden:
        return ""
    listed = ", ".join(f"{name} ({count})" for name, count in report.hidden)
    return (
        f"{len(report.hidden)} slice(s) under {report.min_examples} test examples not shown: "
        f"{listed}"
    )


def format_report(report: FairnessReport) -> str:
    """The fairness block of the run summary and of `python -m lineage trace`."""
    from cli.tables import format_table

    at = "" if report.threshold is None else f" at the decision threshold {report.threshold:.4f}"
    lines = [
        "Fairness on the test split (gap: slice minus overall; fpr, fnr, precision, recall"
        f"{at}; intervals: {report.method}):"
    ]
    lines += ["  " + line for line in format_table(TABLE_HEADER, table_rows(report)).splitlines()]
    if note := hidden_note(report):
        lines.append(f"  {note}")
    lines += [f"  {note}" for note in report.notes]
    return "\n".join(lines)
