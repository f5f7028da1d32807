"""The monitor's report as text (stdout) and as one self-contained HTML page.

The page has no script and loads nothing: inline CSS, tables and inline SVG plots, so it
renders offline (TFDV's Facets view fetches its code from a CDN and is blank without network).
"""

from __future__ import annotations

from html import escape

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.badge { padding: 2px 10px; border-radius: 4px; color: #fff; }
.healthy { background: #2e7d32; } .alert { background: #c62828; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.over td { background: #fdecea; }
.note { color: #666; }
"""


def _status(report: dict) -> str:
    return "ALERT" if report["alerts"] else "HEALTHY"


def text(report: dict) -> str:
    model, window = report["model"], report["window"]
    lines = [
        f"{_status(report)}: {model['name']} version {model['version']}, {window['rows']} "
        f"predictions from {window['first']} to {window['newest']}",
    ]
    lines += [f"  ALERT {alert}" for alert in report["alerts"]]
    if window["other_models"]:
        others = ", ".join(f"{k}: {v}" for k, v in window["other_models"].items())
        lines.append(f"  (not judged, other versions in the window: {others})")
    lines.append("")
    lines.append("skew against the training statistics (TFDV skew comparators)")
    lines.append(f"  {'feature':<18} {'measure':<8} {'value':>8} {'threshold':>9}")
    for skew in report["skew"]:
        flag = "  ALERT" if skew["alert"] else ""
        lines.append(
            f"  {skew['feature']:<18} {skew['measure']:<8} {skew['value']:>8.3f} "
            f"{skew['threshold']:>9g}{flag}"
        )
    if report["anomalies"]:
        lines += ["", "schema anomalies (domains, presence)"]
        lines += [f"  {a['feature']}: {a['kind']}: {a['description']}" for a in report["anomalies"]]
    if report["missing"]:
        missing = ", ".join(f"{k} {v}" for k, v in report["missing"].items())
        lines.append(f"rows missing a feature: {missing}")
    if report["unknown_features"]:
        unknown = ", ".join(f"{k} {v}" for k, v in report["unknown_features"].items())
        lines.append(f"features the model does not read, sent in rows: {unknown}")
    if report["unseen_rows"]:
        unseen = ", ".join(f"{k} {v}" for k, v in report["unseen_rows"].items())
        lines.append(f"rows with values never seen in training (not an alert): {unseen}")
    shift = report["prediction"]
    lines.append("")
    if shift is None:
        lines.append("prediction shift: not measured (no dispute_probability in the rows)")
    else:
        lines.append(
            f"prediction shift against the test split: PSI {shift['psi']:.3f} (threshold "
            f"{shift['threshold']:g}), L-inf {shift['linf']:.3f}; mean {shift['window_mean']:.3f} "
            f"live vs {shift['test_mean']:.3f} on {shift['test_count']} test examples"
        )
    lines.append("")
    lines += [f"baseline {key}: {value}" for key, value in report["baseline"].items()]
    lines.append("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in report["seconds"].items()))
    return "\n".join(lines)


def _table(headers: list[str], rows: list[list], classes: list[str] | None = None, **attrs) -> str:
    attributes = "".join(f' {k}="{escape(v)}"' for k, v in attrs.items())
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{value:.3f}</td>'
            if isinstance(value, float)
            else f"<td>{escape(str(value))}</td>"
            for value in row
        )
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table{attributes}><tr>{head}</tr>{''.join(body)}</table>"


def skew_plot(skews: list[dict]) -> str:
    """Horizontal bars: each feature's skew, its threshold as a tick."""
    width, left, bar, gap = 640, 150, 16, 6
    height = 30 + len(skews) * (bar + gap)
    top = max([s["value"] for s in skews] + [s["threshold"] for s in skews] + [0.01]) * 1.1
    scale = (width - left - 20) / top
    parts = [
        f'<svg id="skew-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="skew per feature">'
    ]
    for index, skew in enumerate(skews):
        y = 10 + index * (bar + gap)
        colour = "#c62828" if skew["alert"] else "#1565c0"
        parts.append(
            f'<text x="{left - 6}" y="{y + bar - 4}" text-anchor="end" font-size="12">'
            f"{escape(skew['feature'])}</text>"
            f'<rect x="{left}" y="{y}" width="{skew["value"] * scale:.1f}" height="{bar}" '
            f'fill="{colour}"/>'
            f'<line x1="{left + skew["threshold"] * scale:.1f}" x2="{left + skew["threshold"] * scale:.1f}"'  # noqa: E501
            f' y1="{y - 2}" y2="{y + bar + 2}" stroke="#000" stroke-width="2"/>'
            f'<text x="{left + skew["value"] * scale + 4:.1f}" y="{y + bar - 4}" font-size="11">'
            f"{skew['value']:.3f}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def prediction_plot(shift: dict) -> str:
    """Paired bars per bin (the test split's deciles): test share grey, live share blue."""
    width, height, left, bottom = 640, 260, 40, 40
    bins = len(shift["test_share"])
    slot = (width - left - 10) / bins
    top = max(shift["test_share"] + shift["window_share"] + [0.01]) * 1.15
    scale = (height - bottom - 10) / top
    parts = [
        f'<svg id="prediction-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="prediction distribution">',
        f'<line x1="{left}" x2="{width - 10}" y1="{height - bottom}" y2="{height - bottom}" '
        'stroke="#444"/>',
    ]
    for index in range(bins):
        x = left + index * slot
        for offset, share, colour in (
            (0.1, shift["test_share"][index], "#9e9e9e"),
            (0.5, shift["window_share"][index], "#1565c0"),
        ):
            bar_height = share * scale
            parts.append(
                f'<rect x="{x + offset * slot:.1f}" y="{height - bottom - bar_height:.1f}" '
                f'width="{slot * 0.4:.1f}" height="{bar_height:.1f}" fill="{colour}"/>'
            )
        parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{height - bottom + 14}" font-size="10" '
            f'text-anchor="middle">{shift["edges"][index]:.2f}-{shift["edges"][index + 1]:.2f}'
            "</text>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 6}" font-size="12"><tspan fill="#9e9e9e">■ test split'
        f' ({shift["test_count"]})</tspan> <tspan fill="#1565c0">■ live window'
        f" ({shift['window_count']})</tspan></text></svg>"
    )
    return "".join(parts)


def _counts(value: dict) -> str:
    """{'company': {'Acme': 2}} -> 'company: Acme (2)'; {'state': 3} -> 'state: 3'."""
    return "; ".join(
        f"{key}: " + (", ".join(f"{v} ({n})" for v, n in item.items()) if isinstance(item, dict)
                      else str(item))
        for key, item in value.items()
    )  # fmt: skip


def html(report: dict) -> str:
    model, window, shift = report["model"], report["window"], report["prediction"]
    status = _status(report)
    title = f"Live traffic of {model['name']} version {model['version']}: {status}"
    sections = [
        f'<h1>{escape(title.split(": ")[0])}: <span class="badge {status.lower()}" '
        f'id="status">{status}</span></h1>',
        f"<p>{window['rows']} predictions from {escape(window['first'])} to "
        f"{escape(window['newest'])} (window {escape(window['since'])} to "
        f"{escape(window['until'])}).</p>",
    ]
    if report["alerts"]:
        items = "".join(f"<li>{escape(alert)}</li>" for alert in report["alerts"])
        sections.append(f'<ul id="alerts">{items}</ul>')
    sections.append("<h2>Skew against the training statistics</h2>")
    sections.append(
        _table(
            ["feature", "measure", "value", "threshold", "status"],
            [
                [
                    s["feature"],
                    s["measure"],
                    s["value"],
                    s["threshold"],
                    "ALERT" if s["alert"] else "ok",
                ]
                for s in report["skew"]
            ],  # fmt: skip
            ["over" if s["alert"] else "" for s in report["skew"]],
            id="skew",
        )
    )
    sections.append(skew_plot(report["skew"]))
    sections.append("<h2>Prediction distribution against the test split</h2>")
    if shift is None:
        sections.append('<p class="note">No dispute_probability in the rows.</p>')
    else:
        sections.append(
            f"<p>PSI {shift['psi']:.3f} (threshold {shift['threshold']:g}), L-infinity "
            f"{shift['linf']:.3f}; mean {shift['window_mean']:.3f} live, "
            f"{shift['test_mean']:.3f} on the test split.</p>" + prediction_plot(shift)
        )
    sections.append("<h2>Schema: domains and presence</h2>")
    anomalies = [[a["feature"], a["kind"], a["description"]] for a in report["anomalies"]]
    sections.append(
        _table(["feature", "anomaly", "description"], anomalies, id="anomalies")
        if anomalies
        else '<p class="note">No anomaly.</p>'
    )
    details = [
        ["rows missing a feature", report["missing"]],
        ["features the model does not read", report["unknown_features"]],
        ["values never seen in training (not an alert)", report["unseen_values"]],
        ["other versions in the window (not judged)", window["other_models"]],
    ]
    rows = [[label, _counts(value)] for label, value in details if value]
    if rows:
        sections.append(_table(["what", "rows"], rows, id="details"))
    sections.append("<h2>Baseline (from MLMD lineage) and timings</h2>")
    sections.append(_table(["what", "artifact"], [list(kv) for kv in report["baseline"].items()]))
    sections.append(_table(["step", "seconds"], [list(kv) for kv in report["seconds"].items()]))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{CSS}</style></head><body>{''.join(sections)}</body></html>\n"
    )
