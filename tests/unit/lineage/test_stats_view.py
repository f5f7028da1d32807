"""The offline statistics view, on TFDV statistics of real prepared rows."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

import pytest

from models import features


@pytest.fixture(scope="module")
def statistics(raw_rows):
    """TFDV's statistics proto of the prepared fixture rows (strings kept, "" included)."""
    import pandas as pd
    import tensorflow_data_validation as tfdv

    frame = pd.DataFrame(raw_rows)
    frame[features.LABEL_KEY] = frame[features.LABEL_KEY].astype(int)
    return tfdv.generate_statistics_from_dataframe(frame)


class Rows(HTMLParser):
    """The table's rows as {data-feature: [cell texts]}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.tables: list[dict] = []
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append(attrs)
        elif tag == "tr" and "data-feature" in attrs:
            self._row = self.rows.setdefault(attrs["data-feature"], [])
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data


def test_summary_counts_match_the_rows(statistics, raw_rows):
    from lineage.notebook import stats_view

    summary = stats_view.summarize(statistics.datasets[0], "train")
    assert summary.num_examples == len(raw_rows)
    assert [f.name for f in summary.features] == sorted(raw_rows[0])

    products = Counter(row["product"] for row in raw_rows)
    product = summary.feature("product")
    assert product.kind == "string" and product.unique == len(products)
    assert product.top_values[0] == products.most_common(1)[0]

    narratives_empty = sum(row[features.TEXT_KEY] == "" for row in raw_rows)
    assert narratives_empty > 0  # the fixture has rows without a narrative
    narrative = summary.feature(features.TEXT_KEY)
    assert (narrative.missing, narrative.empty) == (0, narratives_empty)
    assert summary.blank_share(features.TEXT_KEY) == pytest.approx(narratives_empty / len(raw_rows))

    labels = [int(row[features.LABEL_KEY]) for row in raw_rows]
    label = summary.feature(features.LABEL_KEY)
    assert label.kind == "int" and (label.minimum, label.maximum) == (min(labels), max(labels))
    assert label.mean == pytest.approx(sum(labels) / len(labels))


def test_table_has_one_row_per_feature_with_its_numbers(statistics, raw_rows):
    from lineage.notebook import stats_view

    summary = stats_view.summarize(statistics.datasets[0], "train")
    parser = Rows()
    parser.feed(stats_view.view_html([summary]))

    assert parser.tables == [
        {"class": stats_view.TABLE_CLASS, "data-split": "train", "style": parser.tables[0]["style"]}
    ]
    assert set(parser.rows) == set(raw_rows[0])
    name, kind, missing, empty, unique, tops, *_ = parser.rows["product"]
    value, count = Counter(row["product"] for row in raw_rows).most_common(1)[0]
    assert (name, kind, missing) == ("product", "string", "0.0%")
    assert tops.startswith(f"{value} ({count})")
    narrative = parser.rows[features.TEXT_KEY]
    share = sum(row[features.TEXT_KEY] == "" for row in raw_rows) / len(raw_rows)
    assert narrative[3] == f"{share:.1%}"
    assert stats_view.EMPTY_LABEL in narrative[5]  # "" is the narrative's top value
    # Narratives are cut: three top values and their counts stay one short line.
    assert len(narrative[5]) <= stats_view.TOP_VALUES * (stats_view.VALUE_CHARS + 10)
    label = parser.rows[features.LABEL_KEY]
    assert label[1] == "int" and label[6:] == [
        "0",
        f"{summary.feature(features.LABEL_KEY).mean:.3g}",
        "1",
    ]


def test_unknown_empty_count_is_shown_as_unknown(statistics):
    from lineage.notebook import stats_view

    dataset = type(statistics.datasets[0])()
    dataset.CopyFrom(statistics.datasets[0])
    narrative = next(f for f in dataset.features if f.path.step == [features.TEXT_KEY])
    buckets = narrative.string_stats.rank_histogram.buckets
    kept = [b for b in buckets if b.label != ""][:5]
    del buckets[:]
    buckets.extend(kept)
    del narrative.string_stats.top_values[:]
    summary = stats_view.summarize(dataset, "train")
    assert summary.feature(features.TEXT_KEY).empty is None
    parser = Rows()
    parser.feed(stats_view.table_html(summary))
    assert parser.rows[features.TEXT_KEY][3] == "?"


def test_load_reads_every_split_train_first_and_plots_them(statistics, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lineage.notebook import stats_view

    for split in ("eval", "train"):
        (tmp_path / f"Split-{split}").mkdir()
        # As StatisticsGen writes it: the serialized DatasetFeatureStatisticsList.
        (tmp_path / f"Split-{split}" / "FeatureStats.pb").write_bytes(
            statistics.SerializeToString()
        )
    summaries = stats_view.load(str(tmp_path))
    assert [s.split for s in summaries] == ["train", "eval"]

    fig, axes = plt.subplots(1, 2)
    stats_view.plot(summaries, axes)
    bars = len(summaries[0].features) * 2
    assert [len(ax.patches) for ax in axes] == [bars, bars]
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == [f.name for f in summaries[0].features]
    narrative = labels.index(features.TEXT_KEY)
    assert axes[0].patches[narrative].get_width() == pytest.approx(
        100 * summaries[0].blank_share(features.TEXT_KEY)
    )
    plt.close(fig)

    with pytest.raises(FileNotFoundError, match="not a statistics artifact"):
        stats_view.load(str(tmp_path / "Split-eval"))
