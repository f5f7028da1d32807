"""The model card written beside every pushed model, as JSON and as a self-contained HTML page.

Its content comes from the Evaluator's evaluation_summary.json (pipeline/components/
evaluator.py: data, metrics overall and per slice, fairness, decision threshold, ids) and
from the Pusher (version, destination, ids). The page renders offline: inline CSS and SVG,
no script, no external resource. Rendered with jinja2 (the lock's), not model-card-toolkit
(see docs/pipeline.md, "Model card").
"""

from __future__ import annotations

import datetime
import json

import jinja2

from pipeline import names
from pipeline.components import fairness

# In the pushed version folder, beside saved_model.pb (pipeline/components/push.py).
CARD_JSON, CARD_HTML = "model_card.json", "model_card.html"
INTENDED_USE = (
    "Rank incoming CFPB consumer complaints by the probability that the consumer will dispute "
    "the company's response, so that reviewers can look at likely disputes first. A decision "
    "aid for people, not an automatic decision about a consumer."
)
LIMITATIONS = (
    "The label is noisy: whether a consumer disputed depends on much that the complaint does "
    "not say, and many consumers never answer.",
    "The CFPB collected 'Consumer disputed?' only until April 2017: the model learned from "
    "complaints of 2011-2017 and cannot be checked against later ones.",
    "Groups with fewer test examples than the minimum slice size are listed, not shown, and "
    "were not checked for fairness; 'tags' is empty both for untagged complaints and for "
    "exports without the column.",
    "Metrics are measured on the test split, which neither the Tuner nor the decision threshold "
    "saw; their 95% intervals show how much a test set of this size can tell. Groups with few "
    "test examples have wide intervals: a gap inside its interval is not evidence of unfairness, "
    "nor of its absence.",
)


def card(summary: dict, pushed: dict) -> dict:
    """The model card's content: summary from the Evaluator, pushed from the Pusher."""
    metrics = summary.get("metrics", {})
    return {
        "model": {
            "name": pushed.get("model_name", "cfpb-dispute"),
            "version": pushed["version"],
            "pushed_to": pushed["destination"],
            "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "decision": summary.get("decision", {}),
        "data": summary.get("data", {}),
        "metrics": {
            "overall": metrics.get(fairness.OVERALL, {}),
            "slices": {
                fairness.display_name(k): v
                for k, v in sorted(metrics.items())
                if k != fairness.OVERALL
            },
        },
        "fairness": summary.get("fairness", {}),
        "method": summary.get("method", ""),
        "reasons": summary.get("reasons", []),
        "refusals": summary.get("refusals", []),
        "intended_use": INTENDED_USE,
        "limitations": list(LIMITATIONS),
        "lineage": {
            "pipeline_run_id": summary.get("pipeline_run_id"),
            "examples_id": summary.get("data", {}).get("examples_id"),
            "model_id": summary.get("model", {}).get("id"),
            "evaluation_id": summary.get("evaluation", {}).get("id"),
            "blessing_id": pushed.get("blessing_id"),
            "pushed_model_id": pushed.get("pushed_model_id"),
            "model_uri": summary.get("model", {}).get("uri"),
        },
    }


def gap_chart(report: fairness.FairnessReport, metric: str, width: int = 600) -> str:
    """An inline SVG bar chart of one metric per slice with its 95% interval as an error bar,
    and the overall value as a line."""
    rows = [r for r in report.rows if r.get(metric) and r[metric][0] == r[metric][0]]
    if not rows or not report.overall.get(metric):
        return ""
    bar, label_width, height = 18, 230, 22 * len(rows) + 30
    scale = (width - label_width - 100) / 1.0  # metrics in [0, 1]
    overall = report.overall[metric][0]
    overall_x = label_width + overall * scale
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{metric} by slice">'
    ]
    for i, row in enumerate(rows):
        y = 10 + i * 22
        value, low, high = row[metric]
        gap = (row.get(f"{metric}_gap") or [0])[0] or 0
        colour = "#c0392b" if gap * _worse(metric) > 0 else "#2e86c1"
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end" font-size="12">'
            f"{jinja2.utils.markupsafe.escape(row['slice'])}</text>"
            f'<rect x="{label_width}" y="{y}" width="{value * scale:.1f}" height="{bar}" '
            f'fill="{colour}" fill-opacity="0.75"/>'
        )
        if low == low and high == high:  # the interval, when there is one
            x1, x2, mid = label_width + low * scale, label_width + high * scale, y + bar / 2
            parts.append(
                f'<line class="interval" x1="{x1:.1f}" x2="{x2:.1f}" y1="{mid}" y2="{mid}" '
                f'stroke="#111" stroke-width="1.5"/>'
                f'<line x1="{x1:.1f}" x2="{x1:.1f}" y1="{y + 4}" y2="{y + bar - 4}" stroke="#111"/>'
                f'<line x1="{x2:.1f}" x2="{x2:.1f}" y1="{y + 4}" y2="{y + bar - 4}" stroke="#111"/>'
            )
        parts.append(
            f'<text x="{label_width + max(value, high if high == high else value) * scale + 4:.1f}"'
            f' y="{y + 13}" font-size="11">{fairness.estimate_text(row[metric])}</text>'
        )
    parts.append(
        f'<line x1="{overall_x:.1f}" x2="{overall_x:.1f}" y1="4" y2="{height - 18}" '
        f'stroke="#333" stroke-dasharray="4 3"/><text x="{overall_x:.1f}" y="{height - 4}" '
        f'font-size="11" text-anchor="middle">overall {overall:.3f}</text></svg>'
    )
    return "".join(parts)


def _worse(metric: str) -> int:
    """+1 when a higher value is worse (error rates), -1 when lower is worse."""
    return 1 if metric in ("fpr", "fnr") else -1


TEMPLATE = jinja2.Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Model card: {{ c.model.name }} version {{ c.model.version }}</title>
<style>
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .2rem .5rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.refused { color: #c0392b; } code { font-size: .85rem; }
</style></head><body>
<h1>Model card: {{ c.model.name }}, version {{ c.model.version }}</h1>
<p>Pushed to <code>{{ c.model.pushed_to }}</code> at {{ c.model.pushed_at }}.</p>
<h2>Intended use</h2><p>{{ c.intended_use }}</p>
<h2>Limitations</h2><ul>{% for item in c.limitations %}<li>{{ item }}</li>{% endfor %}</ul>
<h2>Decision threshold</h2>
<p id="threshold">{{ "%.4f"|format(c.decision.threshold) }}: {{ c.decision.rule }}
{% if c.decision.validation_examples %}({{ c.decision.validation_examples }} validation examples,
dispute rate {{ "%.3f"|format(c.decision.validation_dispute_rate) }}){% endif %}.
<code>serving_default</code> returns <code>disputed</code> = 1 above it.</p>
<h2>Data</h2>
<p>Span {{ c.data.span }}; examples per split:
{% for split, n in c.data.rows.items() %}{{ split }} {{ n }}
{%- if not loop.last %}, {% endif %}{% endfor %}.
Input SHA-256 <code>{{ c.data.input_sha256 }}</code>.</p>
<table><tr><th>input file</th><th>bytes</th><th>SHA-256</th></tr>
{% for f in c.data.input_files %}<tr><td><code>{{ f.path }}</code></td>
<td class="n">{{ f.bytes }}</td>
<td><code>{{ f.sha256 }}</code></td></tr>{% endfor %}</table>
<h2>Metrics (test split)</h2>
<p>With 95% intervals: {{ c.method }}.</p>
<table><tr><th>metric</th><th>overall [95% interval]</th></tr>
{% for name, value in c.metrics.overall.items() %}<tr><td>{{ name }}</td>
<td class="n">{{ shown(value) }}</td></tr>{% endfor %}</table>
{% for reason in c.reasons %}<p>{{ reason }}</p>{% endfor %}
{% if c.refusals %}<p class="refused">Not blessed as is:</p><ul class="refused">
{% for r in c.refusals %}<li>{{ r }}</li>{% endfor %}</ul>{% endif %}
<h2>Fairness</h2>
<p>Each slice against the overall slice on the test split, at the decision threshold, with 95%
intervals; slices with fewer than {{ c.fairness.min_examples }} test examples are listed, not
shown.</p>
<table><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}
<td{% if not loop.first %} class="n"{% endif %}>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% if hidden %}<p>{{ hidden }}</p>{% endif %}
{% for note in c.fairness.notes %}<p>{{ note }}</p>{% endfor %}
{% for metric, chart in charts %}<h3>{{ metric|upper }} by slice</h3>{{ chart|safe }}{% endfor %}
<h2>Metrics per slice</h2>
<table><tr><th>slice</th>{% for m in slice_metrics %}<th>{{ m }}</th>{% endfor %}</tr>
{% for name, values in c.metrics.slices.items() %}
{% if values.example_count|default(0) >= c.fairness.min_examples %}
<tr><td>{{ name }}</td>{% for m in slice_metrics %}<td class="n">
{% if m in values %}{{ shown(values[m]) }}{% else %}-{% endif %}</td>{% endfor %}</tr>
{% endif %}{% endfor %}</table>
<h2>Lineage</h2>
<table>{% for key, value in c.lineage.items() %}
<tr><td>{{ key }}</td><td><code>{{ value }}</code></td></tr>{% endfor %}</table>
</body></html>
""",
    autoescape=True,
)


def render_html(content: dict) -> str:
    report = fairness.FairnessReport(**content["fairness"]) if content["fairness"] else None
    rows = fairness.table_rows(report) if report else []
    charts = [(m, gap_chart(report, m)) for m in ("auc", "fnr")] if report else []
    return TEMPLATE.render(
        c=content,
        header=fairness.TABLE_HEADER,
        rows=rows,
        hidden=fairness.hidden_note(report) if report else "",
        charts=[(m, chart) for m, chart in charts if chart],
        slice_metrics=[m for m in names.REPORTED_METRICS if m != "example_count"],
        shown=lambda value: value if not isinstance(value, list) else fairness.estimate_text(value),
    )


def render(summary: dict, pushed: dict) -> tuple[str, str]:
    """(JSON, HTML) of the model card."""
    content = card(summary, pushed)
    return json.dumps(content, indent=2, sort_keys=True), render_html(content)
