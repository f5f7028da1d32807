"""Request bodies to checked tf.Examples, and answers in TF Serving's shapes."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from tensorflow.core.example import example_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from serving import example_wire
from serving.errors import ServingError
from serving.request_examples import parse_predict, parse_serialized
from serving.rest import format_outputs
from serving.servable import FeatureSpec, Signature

SIGNATURE = Signature(
    "serving_default",
    meta_graph_pb2.SignatureDef(),
    "examples",
    ["dispute_probability"],
    {
        "product": FeatureSpec("bytes", 1),
        "issue": FeatureSpec("bytes", 1),
        "complaint_id": FeatureSpec("bytes", 1),
        "count": FeatureSpec("int64", None),
    },
)


def encoded(**values) -> dict:
    example = example_pb2.Example()
    for name, value in values.items():
        example.features.feature[name].bytes_list.value.append(value.encode())
    return {"b64": base64.b64encode(example.SerializeToString()).decode()}


def features_of(batch) -> list[dict]:
    """The examples as the model will parse them: from the serialized bytes."""
    return [
        {k: list(getattr(v, v.WhichOneof("kind")).value) for k, v in e.features.feature.items()}
        for e in map(example_pb2.Example.FromString, batch.serialized)
    ]


def test_every_request_form_gives_the_same_examples():
    expected = [{"product": [b"Mortgage"], "issue": [b"Billing"]}]
    forms = [
        {"instances": [{"product": "Mortgage", "issue": "Billing"}]},
        {"instances": [encoded(product="Mortgage", issue="Billing")]},
        {"instances": [{"examples": encoded(product="Mortgage", issue="Billing")}]},
        {"inputs": {"examples": [encoded(product="Mortgage", issue="Billing")]}},
        {"inputs": [{"product": ["Mortgage"], "issue": "Billing"}]},
        {"inputs": {"product": ["Mortgage"], "issue": ["Billing"]}},
    ]
    for body in forms:
        batch = parse_predict(body, SIGNATURE, max_instances=10)
        assert features_of(batch) == expected, body
        assert batch.columnar == ("inputs" in body)
        assert example_wire.decode(batch.serialized[0]) == batch.examples[0]


def test_numbers_follow_the_models_types():
    batch = parse_predict(
        {"instances": [{"complaint_id": 3456, "count": [1, 2], "product": None}]}, SIGNATURE, 10
    )
    assert features_of(batch) == [{"complaint_id": [b"3456"], "count": [1, 2]}]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [{"Product": "Mortgage"}]}, "only unknown features: Product"),
        ({"instances": [{}]}, "no features"),
        ({"instances": [{"product": ["a", "b"]}]}, "must have 1 value"),
        ({"instances": [{"product": 2.5}]}, "wrong type"),
        ({"instances": [{"product": True}]}, "wrong type"),
        ({"instances": [encoded(product="x"), {"b64": "!!"}]}, "not valid base64"),
        ({"instances": [7]}, "must be a feature object"),
        ({"inputs": {"product": ["a"], "issue": ["b", "c"]}}, "same length"),
        ({"instances": []}, "no instances"),
        ({"instance": []}, "missing 'instances' or 'inputs'"),
        ({"instances": [{"product": "x"}] * 11}, "takes 10"),
    ],
)
def test_bad_bodies_are_refused_with_a_reason(body, message):
    with pytest.raises(ServingError) as raised:
        parse_predict(body, SIGNATURE, max_instances=10)
    assert message in raised.value.message
    assert raised.value.http_status == (413 if "takes" in message else 400)


def test_unknown_features_beside_known_ones_are_reported():
    batch = parse_predict(
        {"instances": [{"product": "x", "Issue": "y"}, {"issue": "z", "zip": "1"}]}, SIGNATURE, 10
    )
    assert batch.unknown == ["Issue", "zip"]
    with pytest.raises(ServingError, match="not a serialized tf.train.Example"):
        parse_serialized([b"\xff\xff\xff"], SIGNATURE, 10)


def test_outputs_take_tf_servings_shapes_for_one_or_more_outputs():
    one = {"dispute_probability": np.array([0.1, 0.2], np.float32)}
    assert format_outputs(one, columnar=False) == {"predictions": one["dispute_probability"]}
    assert format_outputs(one, columnar=True) == {"outputs": one["dispute_probability"]}
    two = {**one, "disputed": np.array([0, 1])}
    rows = format_outputs(two, columnar=False)["predictions"]
    assert [{k: float(v) for k, v in row.items()} for row in rows] == [
        {"dispute_probability": pytest.approx(0.1), "disputed": 0.0},
        {"dispute_probability": pytest.approx(0.2), "disputed": 1.0},
    ]
    assert set(format_outputs(two, columnar=True)["outputs"]) == {"dispute_probability", "disputed"}


def test_the_hand_written_encoder_matches_protobuf():
    cases = [
        {},
        {"product": ("bytes", [b"Mortgage"]), "empty": ("bytes", [b""]), "none": ("bytes", [])},
        {"narrative": ("bytes", [("é" * 200).encode(), b"\x00\xff"])},
        {"n": ("int64", [0, 1, 127, 128, 300, 2**62, -1, -(2**63)]), "no_ints": ("int64", [])},
        {"x": ("float", [0.5, -1.25, 1024.0]), "no_floats": ("float", [])},
    ]
    for features in cases:
        expected = example_pb2.Example()
        for name, (kind, values) in features.items():
            listed = getattr(expected.features.feature[name], f"{kind}_list")
            listed.SetInParent()
            listed.value.extend(values)
        assert example_pb2.Example.FromString(example_wire.encode(features)) == expected
        assert example_wire.decode(expected.SerializeToString()) == features


# A model that reads the pipeline's passthrough keys beside the features it learns from.
PIPELINE_LIKE = Signature(
    "serving_default",
    meta_graph_pb2.SignatureDef(),
    "examples",
    ["dispute_probability"],
    {
        "product": FeatureSpec("bytes", 1),
        "company": FeatureSpec("bytes", 1),
        "complaint_id": FeatureSpec("bytes", 1),
        "tags": FeatureSpec("bytes", 1),
    },
)


@pytest.mark.parametrize(
    "instance, message",
    [
        (
            {"complaint_id": "2", "Product": "Mortgage", "Company": "Wells Fargo"},
            "instance 0 has only unknown features: Company, Product and passthrough "
            "complaint_id (carried for joins and slicing, never learned from). "
            "The model learns from: company, product",
        ),
        (
            {"complaint_id": "2", "tags": "Servicemember"},
            "instance 0 has only passthrough features: complaint_id, tags (carried for joins "
            "and slicing, never learned from). The model learns from: company, product",
        ),
        (
            {"Product": "Mortgage"},
            "instance 0 has only unknown features: Product. The model learns from: company, "
            "product",
        ),
    ],
)
def test_an_example_with_nothing_the_model_learns_from_is_refused(instance, message):
    with pytest.raises(ServingError) as raised:
        parse_predict({"instances": [instance]}, PIPELINE_LIKE, 10)
    assert raised.value.message == message
    assert raised.value.http_status == 400
    # The same example as serialized bytes (the gRPC path) gets the same refusal.
    serialized = example_wire.encode({k: ("bytes", [v.encode()]) for k, v in instance.items()})
    with pytest.raises(ServingError) as raised:
        parse_serialized([serialized], PIPELINE_LIKE, 10)
    assert raised.value.message == message


def test_a_learned_feature_beside_passthrough_and_unknown_ones_is_served():
    body = {"instances": [{"complaint_id": "2", "tags": "", "product": "Mortgage", "Company": "x"}]}
    batch = parse_predict(body, PIPELINE_LIKE, 10)
    assert batch.unknown == ["Company"]
    assert features_of(batch) == [
        {"complaint_id": [b"2"], "tags": [b""], "product": [b"Mortgage"], "Company": [b"x"]}
    ]


def test_passthrough_names_count_only_when_the_model_reads_them():
    # Not the pipeline's model: it reads complaint_id but not tags, so tags is just unknown.
    other = Signature(
        "serving_default",
        meta_graph_pb2.SignatureDef(),
        "examples",
        ["score"],
        {"x": FeatureSpec("float", 1), "complaint_id": FeatureSpec("bytes", 1)},
    )
    with pytest.raises(ServingError) as raised:
        parse_predict({"instances": [{"complaint_id": "2", "tags": "a"}]}, other, 10)
    assert raised.value.message == (
        "instance 0 has only unknown features: tags and passthrough complaint_id (carried for "
        "joins and slicing, never learned from). The model learns from: x"
    )
    # A model that reads nothing but a passthrough name learns from it: it is served.
    lookup = Signature(
        "serving_default",
        meta_graph_pb2.SignatureDef(),
        "examples",
        ["score"],
        {"complaint_id": FeatureSpec("bytes", 1)},
    )
    assert parse_predict({"instances": [{"complaint_id": "2"}]}, lookup, 10).unknown == []
