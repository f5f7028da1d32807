"""The A/B report as text (stdout) and as one self-contained HTML page: inline CSS, tables and
inline SVG, no script and nothing fetched, so it renders offline."""

from __future__ import annotations

from html import escape

from cli.tables import format_table
from monitoring.views import CSS as MONITOR_CSS

CSS = (
    MONITOR_CSS
    + """
.promote { background: #2e7d32; } .roll-back { background: #c62828; }
.keep-testing { background: #ef6c00; }
"""
)
COLUMNS = ["arm", "role", "requests", "outcomes", "dispute rate", "mean score", "AUC [95%]",
           "calibration [95%]", "precision", "recall", "threshold", "p50 ms", "p99 ms"]  # fmt: skip


def number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def estimate(found: list | None, digits: int = 3, signed: bool = False) -> str:
    """'0.620 [0.580, 0.660]'; '-' when undefined; the interval left out when it is."""
    if not found or found[0] is None:
        return "-"
    sign = "+" if signed else ""
    value, low, high = [*found, None, None][:3]
    if low is None or high is None:
        return f"{value:{sign}.{digits}f}"
    return f"{value:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def arm_rows(report: dict) -> list[list[str]]:
    rows = []
    for arm in report["arms"]:
        found = arm["metrics"]
        rows.append(
            [
                arm["name"], arm["role"], f"{arm['requests']:,}", f"{arm['outcomes']:,}",
                number(arm["dispute_rate"]), number(arm["mean_probability"]),
                estimate(found.get("auc")), estimate(found.get("calibration")),
                estimate((found.get("precision") or [None])[:1]),
                estimate((found.get("recall") or [None])[:1]),
                f"{number(arm['threshold'], 4)} ({arm['threshold_source']})",
                number(arm["latency_p50"], 1), number(arm["latency_p99"], 1),
            ]
        )  # fmt: skip
    return rows


def comparison_lines(report: dict) -> list[str]:
    lines = []
    for kind, found in report["comparisons"].items():
        if found is None:
            continue
        what = (
            "on shadowed complaints (both versions scored the same rows)"
            if kind == "paired"
            else "between the arms' own complaints"
        )
        lines.append(
            f"{kind} {what}: {found['outcomes']:,} outcomes, AUC control "
            f"{number(found['control_auc'], 4)}, candidate {number(found['candidate_auc'], 4)}, "
            f"difference {estimate(found['difference'], 4, signed=True)}"
        )
    return lines


def text(report: dict) -> str:
    decision, control, candidate = report["decision"], report["control"], report["candidate"]
    lines = [
        f"{decision['decision'].upper()}: {candidate['label']} version {candidate['version']} "
        f"against {control['label']} version {control['version']} (model {report['model']})",
        f"  reason: {decision['reason']}",
    ]
    if decision["decision"] == "keep testing" and decision["needed"]:
        lines.append(f"  outcomes still needed: about {decision['needed']:,}")
    lines += ["", format_table(COLUMNS, arm_rows(report)), ""]
    lines += comparison_lines(report) or ["no comparison yet: no outcome on both sides"]
    if report["explicit_requests"]:
        lines.append(f"requests that named a version or label (not compared): "
                     f"{report['explicit_requests']:,}")  # fmt: skip
    if report["other_arms"]:
        others = ", ".join(f"{k} {v:,}" for k, v in report["other_arms"].items())
        lines.append(f"other arms in the window (not compared): {others}")
    lines.append("")
    for extent in report["log"]:
        lines.append(
            f"request log {extent['path']} rows {extent['first_row']}-{extent['last_row']} "
            f"({extent['rows']:,} read)"
        )
    for skipped in report["skipped_log_files"]:
        lines.append(f"left out (format 1, before any rollout): {skipped}")
    outcomes = report["outcomes"]
    lines.append(
        f"outcomes {outcomes['path']} sha256 {outcomes['sha256']} ({outcomes['labels']:,} "
        f"labels, {outcomes['matched_complaints']:,} logged complaints matched)"
    )
    rule = report["rule"]
    lines.append(
        f"rule: max AUC drop {rule['max_auc_drop']:g}, at least {rule['min_outcomes']} outcomes, "
        f"{rule['resamples']} resamples (seed {rule['seed']}); {report['seconds']:.2f}s"
    )
    return "\n".join(lines)


def _table(headers: list[str], rows: list[list[str]], **attrs) -> str:
    attributes = "".join(f' {k}="{escape(v)}"' for k, v in attrs.items())
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table{attributes}><tr>{head}</tr>{body}</table>"


def interval_plot(items: list[tuple[str, list | None]], low: float, high: float, plot_id: str,
                  line: float | None = None) -> str:  # fmt: skip
    """One row per item: its interval as a bar, its value as a dot, on [low, high]; an
    optional vertical line (the decision boundary)."""
    width, left, row = 640, 200, 26
    height = 30 + row * len(items)
    scale = (width - left - 20) / (high - low)

    def x(value: float) -> float:
        return left + (min(max(value, low), high) - low) * scale

    parts = [
        f'<svg id="{plot_id}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img">',
        f'<line x1="{left}" x2="{width - 20}" y1="{height - 14}" y2="{height - 14}" '
        'stroke="#444"/>',
        f'<text x="{left}" y="{height - 2}" font-size="10">{low:g}</text>'
        f'<text x="{width - 20}" y="{height - 2}" font-size="10" text-anchor="end">{high:g}'
        "</text>",
    ]
    if line is not None:
        parts.append(
            f'<line x1="{x(line):.1f}" x2="{x(line):.1f}" y1="4" y2="{height - 14}" '
            'stroke="#000" stroke-dasharray="4 3"/>'
        )
    for index, (label, found) in enumerate(items):
        y = 12 + index * row
        parts.append(
            f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
        )
        if not found or found[0] is None:
            continue
        if found[1] is not None and found[2] is not None:
            parts.append(
                f'<rect x="{x(found[1]):.1f}" y="{y - 5}" width="'
                f'{max(x(found[2]) - x(found[1]), 1):.1f}" height="10" fill="#1565c0"/>'
            )
        parts.append(f'<circle cx="{x(found[0]):.1f}" cy="{y}" r="4" fill="#c62828"/>')
    parts.append("</svg>")
    return "".join(parts)


def html(report: dict) -> str:
    decision, control, candidate = report["decision"], report["control"], report["candidate"]
    status = decision["decision"]
    title = (
        f"A/B test of {report['model']}: {candidate['label']} v{candidate['version']} against "
        f"{control['label']} v{control['version']}"
    )
    sections = [
        f'<h1>{escape(title)}: <span class="badge {status.replace(" ", "-")}" id="decision">'
        f"{escape(status.upper())}</span></h1>",
        f'<p id="reason">{escape(decision["reason"])}</p>',
    ]
    if status == "keep testing" and decision["needed"]:
        sections.append(f'<p id="needed">Outcomes still needed: about {decision["needed"]:,}.</p>')
    sections.append("<h2>Arms</h2>" + _table(COLUMNS, arm_rows(report), id="arms"))
    sections.append(
        interval_plot(
            [(a["name"], a["metrics"].get("auc")) for a in report["arms"]],
            0.0,
            1.0,
            "auc-plot",
            0.5,
        )  # fmt: skip
    )
    sections.append('<p class="note">AUC per arm: the dot, its 95% interval; dashed: 0.5, '
                    "chance.</p>")  # fmt: skip
    sections.append("<h2>Candidate minus control</h2>")
    lines = comparison_lines(report)
    sections.append("".join(f"<p>{escape(line)}</p>" for line in lines) or "<p>None yet.</p>")
    margin = -report["rule"]["max_auc_drop"]
    differences = [(k, v["difference"]) for k, v in report["comparisons"].items() if v]
    if differences:
        sections.append(interval_plot(differences, -0.5, 0.5, "difference-plot", margin))
        sections.append(
            f'<p class="note">Dashed: -{report["rule"]["max_auc_drop"]:g}, the boundary. '
            "Promote when the whole interval is right of it, roll back when it is all left.</p>"
        )
    evidence = [
        [e["path"], f"{e['first_row']}-{e['last_row']}", f"{e['rows']:,}"] for e in report["log"]
    ]
    sections.append("<h2>Evidence</h2>" + _table(["request log", "rows", "read"], evidence))
    outcomes = report["outcomes"]
    sections.append(
        _table(
            ["outcomes", "sha256", "labels", "matched"],
            [
                [
                    outcomes["path"],
                    outcomes["sha256"],
                    outcomes["labels"],
                    outcomes["matched_complaints"],
                ]
            ],  # fmt: skip
        )
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{CSS}</style></head><body>{''.join(sections)}</body></html>\n"
    )
