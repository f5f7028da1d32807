"""The features a model reads come from its own graph, not from a list kept by the server."""

from __future__ import annotations

import tensorflow as tf

from serving.servable import DEFAULT_SIGNATURE, FeatureSpec, Servable, describe_signatures


class TwoOutputs(tf.Module):
    """A stand-in model: parses three features, answers two outputs (as a later model may)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        parsed = tf.io.parse_example(
            examples,
            {
                "product": tf.io.FixedLenFeature([1], tf.string, default_value=[""]),
                "amount": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
                "tags": tf.io.VarLenFeature(tf.int64),
            },
        )
        score = tf.sigmoid(parsed["amount"]) * tf.cast(
            tf.strings.length(parsed["product"][:, 0]) > 0, tf.float32
        )
        return {"dispute_probability": score, "disputed": tf.cast(score > 0.5, tf.int64)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def raw(self, x):
        return {"y": x * 2}


def test_features_and_outputs_are_read_from_the_saved_model(tmp_path):
    module = TwoOutputs()
    path = str(tmp_path / "1")
    tf.saved_model.save(
        module, path, signatures={DEFAULT_SIGNATURE: module.serve, "raw": module.raw}
    )
    servable = Servable("m", 1, path)
    default = servable.signatures[DEFAULT_SIGNATURE]
    assert default.input_name == "examples"
    assert default.output_names == ["dispute_probability", "disputed"]
    assert default.features == {
        "product": FeatureSpec("bytes", 1),
        "amount": FeatureSpec("float", 1),
        "tags": FeatureSpec("int64", None),
    }
    assert servable.signatures["raw"].input_name is None  # not serialized examples

    example = tf.train.Example()
    example.features.feature["product"].bytes_list.value.append(b"Mortgage")
    example.features.feature["amount"].float_list.value.append(3.0)
    outputs = servable.run(DEFAULT_SIGNATURE, [example.SerializeToString()] * 2)
    assert outputs["disputed"].tolist() == [1, 1]
    assert servable.warm_up() > 0


def test_a_graph_without_parse_ops_falls_back_to_the_pipelines_columns(tmp_path):
    module = tf.Module()
    module.serve = tf.function(
        lambda examples: {"n": tf.strings.length(examples)},
        input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
    )
    path = str(tmp_path / "1")
    tf.saved_model.save(module, path, signatures={DEFAULT_SIGNATURE: module.serve})
    from serving.servable import read_meta_graph

    known = describe_signatures(read_meta_graph(path))[DEFAULT_SIGNATURE].features
    assert "product" in known and "consumer_complaint_narrative" in known
