"""ExampleGen for the canonical CSV: every column a string feature, the label an integer.

TFX's CsvExampleGen infers column types from the data, so a ZIP code column that
happens to be all digits becomes an integer and serving requests would then need a
different type than the one documented. Reading the prepared file ourselves keeps
the types fixed. pyarrow parses it in blocks (multi-line narratives stay whole) and
tfx_bsl's C++ encoder builds the examples: a Python csv reader and one tf.train.Example
at a time ran at about 0.3% of pyarrow's speed (benchmarks/README.md).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
from pyarrow import csv as arrow_csv
from pyarrow import fs as arrow_fs
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder

from data.checks import prepared_file_problem
from models import features
from pipeline.components import provenance

# pyarrow's block size: each block is parsed and encoded as one record batch.
BLOCK_BYTES = 8 << 20


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


def canonical_header(path: str) -> list[str]:
    """The column names of a prepared CSV, after the checks every data file gets."""
    problem = prepared_file_problem(path, opener=fileio.open)
    if problem:
        raise ValueError(problem)
    with fileio.open(path, "rb") as handle:
        first_line = handle.readline().decode("utf-8").rstrip("\r\n")
    return next(csv.reader([first_line]))


def record_batches(path: str, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.RecordBatch]:
    """The rows of one prepared CSV, every column a string, read by pyarrow in blocks.

    Quoted values may span lines (narratives do); an empty field stays "" rather than null.
    """
    header = canonical_header(path)
    options = {
        "read_options": arrow_csv.ReadOptions(
            column_names=header, skip_rows=1, block_size=block_bytes
        ),
        "parse_options": arrow_csv.ParseOptions(newlines_in_values=True),
        "convert_options": arrow_csv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    }
    # pyarrow opens gs:// and s3:// itself (TFX's GFile lacks what its reader needs).
    filesystem, inner_path = (
        arrow_fs.FileSystem.from_uri(path) if "://" in path else (arrow_fs.LocalFileSystem(), path)
    )
    with filesystem.open_input_stream(inner_path) as stream:
        try:
            yield from arrow_csv.open_csv(stream, **options)
        except pa.ArrowInvalid as error:  # e.g. a row with too few fields, or not UTF-8
            raise ValueError(f"{path} cannot be read as a prepared CSV: {error}") from error


def _label_values(
    labels: pa.Array, path: str, first_row: int, kinds: set[bool]
) -> list[int | str | None]:
    """Each row's label: an int, a text kept for validation to report, or None if empty.

    `kinds` carries across a file's batches whether labels were integers: a file mixing
    both would crash StatisticsGen without a word, so it is refused here with the row.
    """
    values: list[int | str | None] = []
    for offset, label in enumerate(labels.to_pylist()):
        if not label:
            values.append(None)
            continue
        number = features.integer_label(label)
        kinds.add(number is not None)
        if len(kinds) == 2:
            raise ValueError(
                f"{path}, row {first_row + offset}: {features.LABEL_KEY} {label!r} mixes with "
                "labels of the other type in this file; labels must all be 0/1"
            )
        values.append(label if number is None else number)
    return values


def serialized_examples(path: str, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """row_to_example for every row of a prepared CSV, serialized, a block at a time.

    tfx_bsl's C++ encoder builds the examples; re-serializing them deterministically (keys
    sorted) gives the bytes row_to_example gives, which TFX hashes to pick each example's
    split: the same rows land in train and eval as with the row-by-row reader.
    """
    encoder = RecordBatchToExamplesEncoder()
    kinds: set[bool] = set()
    first_row = 2  # the CSV's first record after the header, as an editor numbers it
    for batch in record_batches(path, block_bytes):
        present = [key for key in features.RAW_FEATURE_KEYS if key in batch.schema.names]
        one_each = pa.array(range(batch.num_rows + 1), pa.int32())
        columns = [
            pa.ListArray.from_arrays(one_each, batch.column(key).cast(pa.binary()))
            for key in present
        ]
        labels = (
            _label_values(batch.column(features.LABEL_KEY), path, first_row, kinds)
            if features.LABEL_KEY in batch.schema.names
            else [None] * batch.num_rows
        )
        encoded = (
            encoder.encode(pa.RecordBatch.from_arrays(columns, present))
            if present
            else [b""] * batch.num_rows  # an empty tf.Example; the label may follow
        )
        for serialized, label in zip(encoded, labels, strict=True):
            example = tf.train.Example.FromString(serialized)
            if isinstance(label, int):
                example.features.feature[features.LABEL_KEY].int64_list.value.append(label)
            elif label is not None:
                example.features.feature[features.LABEL_KEY].bytes_list.value.append(
                    label.encode("utf-8")
                )
            yield example.SerializeToString(deterministic=True)
        first_row += batch.num_rows


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
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
        | "ToSerializedExamples" >> beam.FlatMap(serialized_examples)
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
