"""An offline view of TFDV statistics: a per-feature table and charts, drawn from the proto.

TFDV's own view (Facets, what `context.show` displays) loads its scripts from a CDN and from
raw.githubusercontent.com when it is displayed, so without a network it is an empty frame. This
view is plain HTML with inline styles, and matplotlib charts: it renders anywhere, and in an
exported notebook.

The prepared CSV has no missing cells, only empty ones: CsvExampleGen keeps "" as a value, so
TFDV counts those as present. The table shows both, since "empty" is what a person looks for.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from pipeline.metadata import artifacts

TABLE_CLASS = "feature-statistics"
TOP_VALUES = 3
VALUE_CHARS = 40  # longer values (narratives) are cut, so rows stay one line
EMPTY_LABEL = "(empty)"


@dataclass(frozen=True)
class FeatureSummary:
    """One feature of one split, as the table shows it."""

    name: str
    kind: str  # "string", "int" or "float"
    missing: int  # examples without the feature
    empty: int | None  # examples whose value is ""; None when TFDV's histogram does not say
    unique: int | None  # distinct values (strings only)
    top_values: tuple[tuple[str, int], ...]
    minimum: float | None = None
    mean: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class SplitSummary:
    split: str
    num_examples: int
    features: tuple[FeatureSummary, ...]

    def feature(self, name: str) -> FeatureSummary:
        return next(f for f in self.features if f.name == name)

    def blank_share(self, name: str) -> float:
        """Share of examples where the feature is missing or empty (unknown empties count 0)."""
        feature = self.feature(name)
        return (feature.missing + (feature.empty or 0)) / max(self.num_examples, 1)


def _empty_count(string_stats) -> int | None:
    buckets = string_stats.rank_histogram.buckets
    for bucket in buckets:
        if bucket.label == "":
            return int(bucket.sample_count)
    for top in string_stats.top_values:
        if top.value == "":
            return int(top.frequency)
    # Not among the listed values: none, if the histogram lists every distinct value.
    return 0 if len(buckets) >= string_stats.unique else None


def summarize_feature(feature, num_examples: int, top_k: int = TOP_VALUES) -> FeatureSummary:
    """A FeatureNameStatistics proto as a FeatureSummary."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    name = ".".join(feature.path.step) or feature.name
    if feature.HasField("string_stats"):
        stats = feature.string_stats
        tops = tuple((t.value, int(t.frequency)) for t in stats.top_values[:top_k])
        return FeatureSummary(
            name=name,
            kind="string",
            missing=int(stats.common_stats.num_missing),
            empty=_empty_count(stats),
            unique=int(stats.unique),
            top_values=tops,
        )
    if feature.HasField("num_stats"):
        stats = feature.num_stats
        kind = "int" if feature.type == statistics_pb2.FeatureNameStatistics.INT else "float"
        return FeatureSummary(
            name=name,
            kind=kind,
            missing=int(stats.common_stats.num_missing),
            empty=0,
            unique=None,
            top_values=(),
            minimum=stats.min,
            mean=stats.mean,
            maximum=stats.max,
        )
    raise ValueError(f"feature {name!r} has neither string nor numeric statistics")


def summarize(dataset, split: str = "") -> SplitSummary:
    """A DatasetFeatureStatistics proto (one split) as a SplitSummary, features by name."""
    features = (summarize_feature(f, dataset.num_examples) for f in dataset.features)
    return SplitSummary(
        split, int(dataset.num_examples), tuple(sorted(features, key=lambda f: f.name))
    )


def load(statistics_uri: str) -> list[SplitSummary]:
    """Every split of a StatisticsGen output, train first."""
    splits = artifacts.split_names(statistics_uri)
    if not splits:
        raise FileNotFoundError(
            f"no Split-* folders under {statistics_uri}: not a statistics artifact"
        )
    ordered = sorted(splits, key=lambda s: (s != artifacts.DRIFT_SPLIT, s))
    return [
        summarize(artifacts.split_statistics(statistics_uri, split).datasets[0], split)
        for split in ordered
    ]


def _number(value: float | None, kind: str) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if kind == "int" and float(value).is_integer() else f"{value:,.3g}"


def _value(text: str) -> str:
    if text == "":
        return EMPTY_LABEL
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _td(content: str, align: str = "left", title: str = "") -> str:
    # Inline styles: notebook front ends right-align cells and may drop <style> blocks.
    style = f"text-align:{align};padding:2px 8px;vertical-align:top"
    title_attribute = f' title="{html.escape(title)}"' if title else ""
    return f'<td style="{style}"{title_attribute}>{content}</td>'


def _percent_cell(count: int | None, total: int) -> str:
    if count is None:
        return _td("?", "right", "not among the values TFDV lists")
    share = count / max(total, 1)
    bar = (
        f'<div style="background:#d9534f;height:4px;width:{share * 100:.1f}%;'
        f'min-width:{1 if count else 0}px"></div>'
    )
    return _td(f"{share:.1%}{bar}", "right")


def table_html(summary: SplitSummary) -> str:
    """One split's features as an HTML table, one row per feature (data-feature=name)."""
    headers = {"feature": "left", "type": "left", "missing": "right", "empty": "right"}
    headers |= {"unique": "right", "top values (count)": "left"}
    headers |= {"min": "right", "mean": "right", "max": "right"}
    rows = []
    for f in summary.features:
        tops = "; ".join(f"{html.escape(_value(v))} ({n:,})" for v, n in f.top_values)
        cells = [
            _td(f"<b>{html.escape(f.name)}</b>"),
            _td(f.kind),
            _percent_cell(f.missing, summary.num_examples),
            _percent_cell(f.empty, summary.num_examples),
            _td("" if f.unique is None else f"{f.unique:,}", "right"),
            _td(tops),
            *(_td(_number(v, f.kind), "right") for v in (f.minimum, f.mean, f.maximum)),
        ]
        rows.append(f'<tr data-feature="{html.escape(f.name)}">' + "".join(cells) + "</tr>")
    head = "".join(
        f'<th style="text-align:{align};padding:2px 8px;border-bottom:1px solid #999">{name}</th>'
        for name, align in headers.items()
    )
    return (
        f'<table class="{TABLE_CLASS}" data-split="{html.escape(summary.split)}" '
        'style="border-collapse:collapse;font-size:12px">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def view_html(summaries: list[SplitSummary]) -> str:
    """The splits' sizes, and the first split's (train's) table."""
    sizes = ", ".join(f"{s.split} {s.num_examples:,}" for s in summaries)
    first = summaries[0]
    return (
        f"<div><p><b>Examples per split:</b> {html.escape(sizes)}. "
        f"Features of the <b>{html.escape(first.split)}</b> split "
        '(missing: no value; empty: the value ""):</p>'
        f"{table_html(first)}</div>"
    )


def plot(summaries: list[SplitSummary], axes) -> None:
    """Two charts on two matplotlib axes: blank share and distinct values, per feature and split."""
    import numpy as np

    names = [f.name for f in summaries[0].features]
    positions = np.arange(len(names))
    height = 0.8 / len(summaries)
    for i, summary in enumerate(summaries):
        known = {f.name for f in summary.features}
        blank = [100 * summary.blank_share(n) if n in known else 0 for n in names]
        unique = [(summary.feature(n).unique or 0) if n in known else 0 for n in names]
        offsets = positions + i * height
        axes[0].barh(offsets, blank, height=height, label=summary.split)
        axes[1].barh(offsets, unique, height=height, label=summary.split)
    axes[0].set_title("Missing or empty, % of examples")
    axes[1].set_title("Distinct values (strings)")
    axes[1].set_xscale("symlog")
    for ax in axes:
        ax.set_yticks(positions + height * (len(summaries) - 1) / 2, names)
        ax.invert_yaxis()
        ax.legend()
