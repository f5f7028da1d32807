"""Fairness report and gate, the schema difference, the model card: their rules on known inputs."""

from __future__ import annotations

import json

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from lineage import schema_diff
from pipeline.components import fairness, model_card

BY_SLICE = {
    "Overall": {"example_count": 1000, "auc": 0.70, "fpr": 0.20, "fnr": 0.40,
                "precision": 0.35, "recall": 0.60},
    "tags: Older American": {"example_count": 150, "auc": 0.58, "fpr": 0.25, "fnr": 0.55,
                             "precision": 0.30, "recall": 0.45},
    "tags: ": {"example_count": 800, "auc": 0.72, "fpr": 0.19, "fnr": 0.38,
               "precision": 0.36, "recall": 0.62},
    "tags: Servicemember": {"example_count": 40, "auc": 0.40},
    "product: Mortgage": {"example_count": 300, "auc": 0.69},
    "issue: Billing": {"example_count": 500, "auc": 0.5},  # not a fairness slice key
}  # fmt: skip
KEYS = ("tags", "submitted_via", "product")


def test_rows_have_gaps_to_overall_and_small_slices_are_hidden_and_named():
    report = fairness.build_report(BY_SLICE, KEYS, min_examples=100, threshold=0.3)
    names = [row["slice"] for row in report.rows]
    assert names == ["product: Mortgage", "tags: (none)", "tags: Older American"]
    older = report.rows[2]
    assert older["auc_gap"] == pytest.approx(-0.12) and older["fnr_gap"] == pytest.approx(0.15)
    assert report.hidden == [["tags: Servicemember", 40]]
    assert fairness.hidden_note(report) == (
        "1 slice(s) under 100 eval examples hidden: tags: Servicemember (40)"
    )
    table = fairness.table_rows(report)
    assert table[0][:3] == ["Overall", "1000", "0.700"]
    assert table[3][:4] == ["tags: Older American", "150", "0.580", "-0.120"]
    text = fairness.format_report(report)
    assert "at the decision threshold 0.3000" in text and "tags: Servicemember (40)" in text


def test_the_gate_refuses_a_group_worse_than_overall_past_its_margin():
    gate = fairness.GateSettings(
        groups=fairness.parse_groups("tags: Older American; tags: Servicemember"),
        max_auc_gap=0.10,
        max_fnr_gap=0.10,
        min_examples=100,
    )
    assert fairness.GateSettings.from_json(gate.to_json()) == gate
    report = fairness.build_report(BY_SLICE, KEYS, 100)
    fairness.apply_gate(report, gate)
    assert report.refusals == [
        "fairness: tags: Older American auc 0.5800 is 0.1200 below overall 0.7000; "
        "at most 0.1000 is allowed",
        "fairness: tags: Older American fnr 0.5500 is 0.1500 above overall 0.4000; "
        "at most 0.1000 is allowed",
    ]
    assert report.notes == [
        "fairness gate: tags: Servicemember not judged, 40 eval example(s) (at least 100 needed)"
    ]
    lenient = fairness.GateSettings(groups=("tags: Older American",), max_auc_gap=0.2,
                                    max_fnr_gap=0.2)  # fmt: skip
    assert fairness.apply_gate(fairness.build_report(BY_SLICE, KEYS, 100), lenient).refusals == []
    round_trip = fairness.FairnessReport.from_json(report.to_json())
    assert round_trip == report


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
    report = fairness.build_report(BY_SLICE, KEYS, 100, threshold=0.3)
    summary = {
        "decision": {"threshold": 0.3, "rule": "dispute rate", "validation_examples": 128,
                     "validation_dispute_rate": 0.2},
        "metrics": BY_SLICE,
        "fairness": json.loads(report.to_json()),
        "refusals": [],
        "data": {"span": 2, "rows": {"train": 900, "eval": 300}, "input_sha256": "ab" * 32,
                 "input_files": [{"path": "/d/c.csv", "sha256": "cd" * 32, "bytes": 10}],
                 "examples_id": 7},
        "model": {"uri": "/m", "id": 11},
        "evaluation": {"uri": "/e", "id": 12},
        "pipeline_run_id": "run-1",
    }  # fmt: skip
    card_json, html = model_card.render(summary, {"version": "17", "destination": "/s/17"})
    card = json.loads(card_json)
    assert card["lineage"]["model_id"] == 11 and card["decision"]["threshold"] == 0.3
    assert card["data"]["rows"] == {"train": 900, "eval": 300}
    for words in (
        "version 17",
        "0.3000",
        "Intended use",
        "Limitations",
        "2017",
        "cd" * 32,
        "tags: Older American",
        "tags: Servicemember (40)",
        "AUC by slice",
        "run-1",
    ):
        assert words in html, words  # fmt: skip
    assert "<script" not in html and "https://" not in html and "<link" not in html
