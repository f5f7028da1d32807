"""ExampleGen for the canonical CSV: every column a string feature, the label an integer.

TFX's CsvExampleGen infers column types from the data, so a ZIP code column that
happens to be all digits becomes an integer and serving requests would then need a
different type than the one documented. Reading the prepared file ourselves keeps
the types fixed, and Python's csv module keeps multi-line narratives whole.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from data.checks import prepared_file_problem
from models import features
from pipeline.components import provenance

csv.field_size_limit(sys.maxsize)


def _bytes_feature(value: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))


def row_to_example(row: dict[str, str]) -> tf.train.Example:
    """A tf.Example: every raw column as bytes, the label as int64.

    Nothing is fixed up here: a missing column or label becomes a missing feature, and a
    label that is not an integer stays bytes, so that validation against the schema
    reports it in plain words and stops the run before training.
    """
    feature = {key: _bytes_feature(row[key]) for key in features.RAW_FEATURE_KEYS if key in row}
    label = row.get(features.LABEL_KEY) or ""
    if (number := features.integer_label(label)) is not None:
        feature[features.LABEL_KEY] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[number])
        )
    elif label:
        feature[features.LABEL_KEY] = _bytes_feature(label)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def read_canonical_csv(path: str) -> Iterator[dict[str, str]]:
    """Rows of one prepared CSV; columns it lacks are left for schema validation to report."""
    problem = prepared_file_problem(path, opener=fileio.open)
    if problem:
        raise ValueError(problem)
    label_kinds: set[bool] = set()  # is the label an integer?
    with fileio.open(path, "r") as handle:
        for row_number, row in enumerate(csv.DictReader(_text_lines(handle)), start=2):
            label = row.get(features.LABEL_KEY) or ""
            if label:
                label_kinds.add(features.integer_label(label) is not None)
                if len(label_kinds) == 2:  # two types would crash StatisticsGen, unexplained
                    raise ValueError(
                        f"{path}, row {row_number}: {features.LABEL_KEY} {label!r} mixes with "
                        "labels of the other type in this file; labels must all be 0/1"
                    )
            yield row


def _text_lines(handle) -> Iterator[str]:
    for line in handle:
        yield line.decode("utf-8") if isinstance(line, bytes) else line


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _CanonicalCsvToExample(  # noqa: N802 (Beam's PTransform naming)
    pipeline: beam.Pipeline, exec_properties: dict, split_pattern: str
) -> beam.PCollection:
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    paths = sorted(fileio.glob(pattern))
    if not paths:
        raise ValueError(f"no input file matches {pattern}")
    return (
        pipeline
        | "ListFiles" >> beam.Create(paths)
        | "ReadRows" >> beam.FlatMap(read_canonical_csv)
        | "ToExample" >> beam.Map(row_to_example)
    )


def input_paths(exec_properties: dict) -> list[str]:
    """The files the input config's split patterns match under input_base."""
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
    )
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    return sorted(
        {p for split in input_config.splits for p in fileio.glob(os.path.join(base, split.pattern))}
    )


class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for the prepared CFPB CSV; fingerprints what it read."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        return _CanonicalCsvToExample

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        super().Do(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        paths = input_paths(exec_properties)
        provenance.record_input_files(examples, paths)
        provenance.record_feedback(examples, paths)
