"""Metrics by slice for people: small slices hidden and named, undefined AUCs marked.

TFMA reports AUC 0.0 for a slice whose examples are all one class (its ROC curve has no
area; the sum of NaN rectangles is 0), and AUC on a handful of examples is noise. So slices
with fewer than MIN_SLICE_EXAMPLES test examples are hidden, and listed as hidden; a slice
with one class has no AUC (NaN), whatever TFMA stored.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass

from pipeline import names
from pipeline.config import MIN_SLICE_EXAMPLES

EVAL_SPLIT = names.TEST  # the split the Evaluator reads
UNDEFINED = "undefined: one class"
HIDDEN_LINE_CHARS = 80  # the hidden slices' list under the chart wraps to the plot's width


@dataclass(frozen=True)
class SliceView:
    """The slices of one feature: those shown, and those hidden for size."""

    feature: str
    min_examples: int
    shown: list[dict]  # value, examples, positives, auc (NaN when undefined), note
    hidden: list[tuple[str, int]]  # value, examples

    def hidden_text(self) -> str:
        if not self.hidden:
            return f"No {self.feature} slice hidden (all have {self.min_examples}+ test examples)."
        listed = ", ".join(f"{value} ({count})" for value, count in self.hidden)
        return (
            f"Hidden, fewer than {self.min_examples} test examples "
            f"({len(self.hidden)} {self.feature} slices): {listed}"
        )


def label_counts(examples_uri: str, feature: str, label: str, split: str = EVAL_SPLIT):
    """{feature value: [examples, positives]} over one split of an Examples artifact."""
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    if not files:
        raise FileNotFoundError(f"no Split-{split} files under {examples_uri}")
    counts: dict[str, list[int]] = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        values = example.features.feature[feature].bytes_list.value
        value = values[0].decode("utf-8") if values else ""
        positive = list(example.features.feature[label].int64_list.value) == [1]
        entry = counts.setdefault(value, [0, 0])
        entry[0] += 1
        entry[1] += int(positive)
    return counts


def slices(
    by_slice: dict[str, dict[str, float]],
    feature: str,
    counts: dict[str, list[int]],
    min_examples: int = MIN_SLICE_EXAMPLES,
) -> SliceView:
    """The `feature: value` slices of slice_metrics(), largest first, split by size.

    counts ({value: [examples, positives]}, from label_counts) says which slices have one class.
    """
    prefix = f"{feature}: "
    shown, hidden = [], []
    for name, metrics in by_slice.items():
        value = name[len(prefix) :]
        if not name.startswith(prefix) or ": " in value:  # ": " in value: a crossed slice
            continue
        examples = int(metrics.get("example_count", 0))
        if examples < min_examples:
            hidden.append((value, examples))
            continue
        total, positives = counts.get(value, (examples, None))
        one_class = positives is not None and positives in (0, total)
        auc = metrics.get("auc", float("nan"))
        shown.append(
            {
                "value": value,
                "examples": examples,
                "positives": positives,
                "auc": float("nan") if one_class else auc,
                "note": UNDEFINED if one_class else "",
            }
        )
    shown.sort(key=lambda row: -row["examples"])
    hidden.sort(key=lambda item: -item[1])
    return SliceView(feature, min_examples, shown, hidden)


def plot_auc(view: SliceView, overall_auc: float, ax, top: int = 10) -> None:
    """AUC of the shown slices (largest `top`) as bars; undefined ones written, not drawn."""
    import math

    rows = view.shown[:top][::-1]
    labels = [f"{row['value']} ({row['examples']})" for row in rows]
    values = [0.0 if math.isnan(row["auc"]) else row["auc"] for row in rows]
    bars = ax.barh(range(len(rows)), values, color="tab:blue")
    for bar, row in zip(bars, rows, strict=True):
        if math.isnan(row["auc"]):
            bar.set_visible(False)
            ax.text(0.01, bar.get_y() + bar.get_height() / 2, f"AUC {UNDEFINED}", va="center")
        else:
            ax.text(
                row["auc"] + 0.01,
                bar.get_y() + bar.get_height() / 2,
                f"{row['auc']:.3f}",
                va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},  # over the overall line
                zorder=4,
            )
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlim(0, 1.1)
    ax.set_ylim(-0.5, max(len(rows), 4) - 0.5)  # a lone slice stays a bar, not a block
    ax.axvline(overall_auc, color="black", linestyle="--", label=f"overall {overall_auc:.3f}")
    ax.legend(loc="lower right")
    ax.set_title(f"AUC by {view.feature}: slices with {view.min_examples}+ test examples (count)")
    if not rows:
        ax.text(
            0.5,
            0.5,
            f"no {view.feature} slice has {view.min_examples} test examples",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.set_xlabel(textwrap.fill(view.hidden_text(), HIDDEN_LINE_CHARS))
