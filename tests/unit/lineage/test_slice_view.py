"""Metrics by slice for people: small slices hidden and named, one-class AUCs not drawn as 0."""

from __future__ import annotations

import math

import pytest

from models import features
from pipeline.config import MIN_SLICE_EXAMPLES

# As artifacts.slice_metrics() returns them; TFMA stores AUC 0.0 for a one-class slice.
BY_SLICE = {
    "Overall": {"auc": 0.61, "example_count": 400.0},
    "product: Mortgage": {"auc": 0.64, "example_count": 180.0},
    "product: Debt collection": {"auc": 0.0, "example_count": 120.0},
    "product: Prepaid card": {"auc": 0.0, "example_count": 2.0},
    "product: Money transfers": {"auc": 0.0, "example_count": 4.0},
    "issue: Loan servicing": {"auc": 0.5, "example_count": 150.0},
    "product: Mortgage, issue: Loan servicing": {"auc": 0.7, "example_count": 110.0},
}
COUNTS = {
    "Mortgage": [180, 40],
    "Debt collection": [120, 0],
    "Prepaid card": [2, 0],
    "Money transfers": [4, 1],
}


def test_small_slices_are_hidden_and_one_class_slices_have_no_auc():
    from lineage.notebook import slice_view

    view = slice_view.slices(BY_SLICE, "product", COUNTS)
    assert view.min_examples == MIN_SLICE_EXAMPLES
    assert [row["value"] for row in view.shown] == ["Mortgage", "Debt collection"]
    mortgage, debt = view.shown
    assert (mortgage["auc"], mortgage["positives"], mortgage["note"]) == (0.64, 40, "")
    assert math.isnan(debt["auc"]) and debt["note"] == slice_view.UNDEFINED
    assert view.hidden == [("Money transfers", 4), ("Prepaid card", 2)]
    assert view.hidden_text() == (
        f"Hidden, fewer than {MIN_SLICE_EXAMPLES} test examples (2 product slices): "
        "Money transfers (4), Prepaid card (2)"
    )
    everything = slice_view.slices(BY_SLICE, "product", COUNTS, min_examples=1)
    assert everything.hidden == [] and "No product slice hidden" in everything.hidden_text()
    assert math.isnan(everything.shown[-1]["auc"])  # Prepaid card: 2 examples, no dispute


def test_chart_writes_undefined_instead_of_a_zero_bar():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lineage.notebook import slice_view

    view = slice_view.slices(BY_SLICE, "product", COUNTS)
    fig, ax = plt.subplots()
    slice_view.plot_auc(view, BY_SLICE["Overall"]["auc"], ax)
    drawn = [bar for bar in ax.patches if bar.get_visible()]
    assert [bar.get_width() for bar in drawn] == [0.64]
    texts = [t.get_text() for t in ax.texts]
    assert f"AUC {slice_view.UNDEFINED}" in texts and "0.000" not in " ".join(texts)
    assert "Money transfers (4)" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["Debt collection (120)", "Mortgage (180)"]
    plt.close(fig)

    fig, ax = plt.subplots()
    slice_view.plot_auc(slice_view.slices(BY_SLICE, "product", COUNTS, 1000), 0.61, ax)
    assert not ax.patches and any("no product slice" in t.get_text() for t in ax.texts)
    plt.close(fig)


def test_label_counts_read_the_split(tmp_path, raw_rows):
    import tensorflow as tf

    from lineage.notebook import slice_view

    split = tmp_path / "Split-test"
    split.mkdir()
    with tf.io.TFRecordWriter(str(split / "data.gz"), options="GZIP") as writer:
        for row in raw_rows:
            feature = {
                "product": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[row["product"].encode()])
                ),
                features.LABEL_KEY: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[int(row[features.LABEL_KEY])])
                ),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())

    counts = slice_view.label_counts(str(tmp_path), "product", features.LABEL_KEY)
    expected: dict[str, list[int]] = {}
    for row in raw_rows:
        entry = expected.setdefault(row["product"], [0, 0])
        entry[0] += 1
        entry[1] += row[features.LABEL_KEY] == "1"
    assert counts == expected
    with pytest.raises(FileNotFoundError, match="no Split-train files"):
        slice_view.label_counts(str(tmp_path), "product", features.LABEL_KEY, split="train")
