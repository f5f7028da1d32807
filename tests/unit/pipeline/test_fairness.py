"""Fairness report and gate, the schema difference, the model card: their rules on known inputs."""

from __future__ import annotations

import json

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from lineage import schema_diff
from pipeline.components import fairness, model_card


def estimate(value: float, width: float = 0.05) -> list[float]:
    return [value, value - width, value + width]


# As the Evaluator writes them: [value, low, high] per metric; gaps are slice minus overall.
ESTIMATES = {
    "Overall": {"example_count": 1000, "auc": estimate(0.70, 0.03), "fpr": estimate(0.20),
                "fnr": estimate(0.40), "precision": estimate(0.35), "recall": estimate(0.60)},
    "tags: Older American": {"example_count": 150, "auc": estimate(0.58, 0.08),
                             "fpr": estimate(0.25), "fnr": estimate(0.55, 0.1),
                             "precision": estimate(0.30), "recall": estimate(0.45)},
    "tags: ": {"example_count": 800, "auc": estimate(0.72), "fpr": estimate(0.19),
               "fnr": estimate(0.38), "precision": estimate(0.36), "recall": estimate(0.62)},
    "tags: Servicemember": {"example_count": 12, "auc": estimate(0.40, 0.3)},
    "product: Mortgage": {"example_count": 300, "auc": estimate(0.69)},
    "issue: Billing": {"example_count": 500, "auc": estimate(0.5)},  # not a fairness slice key
}  # fmt: skip
GAPS = {
    "tags: Older American": {"auc": [-0.12, -0.20, -0.06], "fnr": [0.15, 0.02, 0.28]},
    "tags: ": {"auc": [0.02, -0.01, 0.05], "fnr": [-0.02, -0.05, 0.01]},
    "tags: Servicemember": {"auc": [-0.30, -0.62, 0.02]},
    "product: Mortgage": {"auc": [-0.01, -0.06, 0.04]},
}
KEYS = ("tags", "submitted_via", "product")


def report(min_examples: int = 20, threshold: float | None = None):
    return fairness.build_report(ESTIMATES, GAPS, KEYS, min_examples, threshold, "bootstrap")


def test_rows_have_gaps_with_intervals_and_small_slices_are_listed_by_name():
    found = report(threshold=0.3)
    names = [row["slice"] for row in found.rows]
    assert names == ["product: Mortgage", "tags: (none)", "tags: Older American"]
    older = found.rows[2]
    assert older["auc_gap"] == [-0.12, -0.20, -0.06]
    assert older["fnr"] == pytest.approx([0.55, 0.45, 0.65])
    assert found.hidden == [["tags: Servicemember", 12]]
    assert fairness.hidden_note(found) == (
        "1 slice(s) under 20 test examples not shown: tags: Servicemember (12)"
    )
    table = fairness.table_rows(found)
    assert table[0][:3] == ["Overall", "1000", "0.700 [0.670, 0.730]"]
    assert table[3][:4] == [
        "tags: Older American", "150", "0.580 [0.500, 0.660]", "-0.120 [-0.200, -0.060]"
    ]  # fmt: skip
    text = fairness.format_report(found)
    assert "at the decision threshold 0.3000" in text and "tags: Servicemember (12)" in text
    assert "intervals: bootstrap" in text


def test_the_gate_refuses_a_group_significantly_worse_than_overall_past_its_margin():
    gate = fairness.GateSettings(
        groups=fairness.parse_groups("tags: Older American; tags: Servicemember"),
        max_auc_gap=0.05,
        max_fnr_gap=0.10,
        min_examples=20,
    )
    assert fairness.GateSettings.from_json(gate.to_json()) == gate
    found = fairness.apply_gate(report(), gate)
    assert found.refusals == [
        "fairness: tags: Older American auc 0.5800 [0.5000, 0.6600] is 0.1200 [0.0600, 0.2000] "
        "below overall 0.7000 [0.6700, 0.7300]; at most 0.0500 is allowed, and the whole 95% "
        "interval is past it"
    ]
    assert found.notes == [
        "fairness gate: tags: Older American fnr 0.5500 [0.4500, 0.6500] is 0.1500 [0.0200, "
        "0.2800] above overall 0.4000 [0.3500, 0.4500]: past 0.1000 by its estimate but not "
        "significantly (the 95% interval reaches it), so not refused",
        "fairness gate: tags: Servicemember too small to judge, 12 test example(s) (at least 20 "
        "needed)",
    ]
    lenient = fairness.GateSettings(groups=("tags: Older American",), max_auc_gap=0.2,
                                    max_fnr_gap=0.2)  # fmt: skip
    assert fairness.apply_gate(report(), lenient).refusals == []
    assert fairness.FairnessReport.from_json(found.to_json()) == found


CURATED = """
feature { name: "product" type: BYTES domain: "product" presence { min_fraction: 1.0 } }
feature { name: "zip_code" type: BYTES presence { min_fraction: 1.0 } }
feature { name: "consumer_disputed" type: INT presence { min_fraction: 1.0 } }
string_domain { name: "product" value: "Mortgage" value: "Credit card" }
"""
INFERRED = """
feature { name: "product" type: BYTES domain: "product" presence { min_fraction: 1.0 } }
feature { name: "zip_code" type: BYTES presence { min_fraction: 0.9 } }
feature { name: "consumer_disputed" type: BYTES presence { min_fraction: 1.0 } }
feature { name: "tags" type: BYTES presence { min_fraction: 1.0 } }
string_domain { name: "product" value: "Mortgage" value: "Crypto wallet" }
"""


def test_schema_difference_names_new_values_presence_type_and_new_features():
    curated = text_format.Parse(CURATED, schema_pb2.Schema())
    inferred = text_format.Parse(INFERRED, schema_pb2.Schema())
    changes = schema_diff.schema_difference(inferred, curated)
    assert [str(c) for c in changes] == [
        "consumer_disputed: type (INT -> BYTES)",
        "product: new values (1: 'Crypto wallet')",
        "tags: new feature (BYTES)",
        "zip_code: presence (min_fraction 1 -> 0.9)",
    ]
    assert schema_diff.one_line([]) == "none"
    assert schema_diff.difference_rows(changes[1:2]) == [
        {"feature": "product", "change": "new values", "detail": "1: 'Crypto wallet'"}
    ]
    proposed = schema_diff.apply_difference(curated, inferred, changes)
    assert list(proposed.string_domain[0].value) == ["Mortgage", "Credit card", "Crypto wallet"]
    assert "tags" in [f.name for f in proposed.feature]
    assert schema_diff.schema_difference(proposed, proposed) == []
    assert schema_diff.schema_difference(curated, curated) == []


def test_the_model_card_renders_offline_with_every_section():
    summary = {
        "decision": {"threshold": 0.3, "rule": "dispute rate", "validation_examples": 128,
                     "validation_dispute_rate": 0.2},
        "metrics": ESTIMATES,
        "method": "Poisson bootstrap, percentile intervals, 1000 resamples, seed 0",
        "reasons": ["auc 0.7000 [0.6700, 0.7300] is at least 0.5500"],
        "fairness": json.loads(report(threshold=0.3).to_json()),
        "refusals": [],
        "data": {"span": 2, "rows": {"train": 700, "validation": 150, "test": 150},
                 "input_sha256": "ab" * 32,
                 "input_files": [{"path": "/d/c.csv", "sha256": "cd" * 32, "bytes": 10}],
                 "examples_id": 7},
        "model": {"uri": "/m", "id": 11},
        "evaluation": {"uri": "/e", "id": 12},
        "pipeline_run_id": "run-1",
    }  # fmt: skip
    card_json, html = model_card.render(summary, {"version": "17", "destination": "/s/17"})
    card = json.loads(card_json)
    assert card["lineage"]["model_id"] == 11 and card["decision"]["threshold"] == 0.3
    assert card["data"]["rows"] == {"train": 700, "validation": 150, "test": 150}
    for words in (
        "version 17",
        "0.3000",
        "Intended use",
        "Limitations",
        "2017",
        "cd" * 32,
        "tags: Older American",
        "tags: Servicemember (12)",
        "AUC by slice",
        "0.700 [0.670, 0.730]",
        "Metrics (test split)",
        "1000 resamples",
        "run-1",
    ):
        assert words in html, words  # fmt: skip
    assert "<script" not in html and "https://" not in html and "<link" not in html
