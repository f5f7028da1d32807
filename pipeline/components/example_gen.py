"""ExampleGen for the canonical CSV: every column a string feature, the label an integer.

TFX's CsvExampleGen infers column types from the data, so a ZIP code column that
happens to be all digits becomes an integer and serving requests would then need a
different type than the one documented. Reading the prepared file ourselves keeps
the types fixed. pyarrow parses it in blocks (multi-line narratives stay whole), and each
block is encoded (example_records.py) and written as a whole: a Python csv reader and one
tf.train.Example at a time ran at about 0.3% of pyarrow's speed (benchmarks/README.md).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from pyarrow import csv as arrow_csv
from pyarrow import fs as arrow_fs
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from data.file_checks import prepared_file_problem
from models import features
from pipeline.components import example_records, provenance

# pyarrow's block size: each block is parsed, encoded and written as one record batch.
BLOCK_BYTES = 8 << 20
COMPRESSION_THREADS = 2  # the machines' cores; zlib releases the GIL
GZIPPED_TFRECORDS = (example_gen_pb2.FILE_FORMAT_UNSPECIFIED, example_gen_pb2.FORMAT_TFRECORDS_GZIP)
TF_EXAMPLE = example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE
Job = tuple[int, str, int | None]  # input file index, its path, its fixed output split


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


def _refuse_mixed_labels(labels: pa.Array, path: str, first_row: int, kinds: set[bool]) -> None:
    """Raise at the first row whose label kind (integer or text) differs from those before."""
    for offset, label in enumerate(labels.to_pylist()):
        if label:
            kinds.add(features.integer_label(label) is not None)
            if len(kinds) == 2:
                raise ValueError(
                    f"{path}, row {first_row + offset}: {features.LABEL_KEY} {label!r} mixes "
                    "with labels of the other type in this file; labels must all be 0/1"
                )


def _label_entries(labels: pa.Array, path: str, first_row: int, kinds: set[bool]) -> pa.Array:
    """Each row's label map entry: int64 for 0/1, bytes for a text label (kept for validation
    to report), null if empty.

    `kinds` carries across a file's batches whether labels were integers: a file mixing
    both would crash StatisticsGen without a word, so it is refused here with the row.
    """
    distinct = pc.unique(labels)
    texts = distinct.to_pylist()
    numbers = {label: features.integer_label(label) for label in texts if label}
    if len(kinds | {number is not None for number in numbers.values()}) == 2:
        _refuse_mixed_labels(labels, path, first_row, kinds)
    kinds.update(number is not None for number in numbers.values())
    entries = [
        example_records.feature_entry(
            features.LABEL_KEY,
            _bytes_feature(label)
            if numbers[label] is None
            else tf.train.Feature(int64_list=tf.train.Int64List(value=[numbers[label]])),
        )
        if label
        else None
        for label in texts
    ]
    return pa.array(entries, pa.binary()).take(pc.index_in(labels, distinct))


def serialized_blocks(path: str, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.Array]:
    """row_to_example for every row of a prepared CSV, serialized, one array per block.

    The bytes equal row_to_example's deterministic serialization, which TFX hashes to pick
    each example's split: the same rows land in train and eval as with a row-by-row reader.
    """
    kinds: set[bool] = set()
    first_row = 2  # the CSV's first record after the header, as an editor numbers it
    for batch in record_batches(path, block_bytes):
        names = batch.schema.names
        columns = {key: batch.column(key) for key in features.RAW_FEATURE_KEYS if key in names}
        labels = (
            _label_entries(batch.column(features.LABEL_KEY), path, first_row, kinds)
            if features.LABEL_KEY in names
            else pa.nulls(batch.num_rows, pa.binary())
        )
        yield example_records.serialize_rows(columns, {features.LABEL_KEY: labels})
        first_row += batch.num_rows


class _WriteExampleFiles(beam.DoFn):
    """Writes one input file's examples a block at a time: a gzipped TFRecord file per block
    and split, compressed in threads while the next block is read.

    Files go to a staging folder first and are renamed into place whole, so a reader of a
    split never sees half a file.
    """

    def __init__(self, split_uris: list[str], staging: str, buckets: list[int]) -> None:
        self._split_uris, self._staging, self._buckets = split_uris, staging, buckets

    def _write(self, data: pa.Buffer, name: str, split: int) -> None:
        staged = os.path.join(self._staging, f"{split}-{name}")
        with fileio.open(staged, "wb") as handle:
            handle.write(example_records.gzip_bytes(data))
        fileio.rename(staged, os.path.join(self._split_uris[split], name), overwrite=True)

    def process(self, job: Job) -> None:
        file_index, path, fixed_split = job
        written = np.zeros(len(self._split_uris), np.int64)
        with ThreadPoolExecutor(max_workers=COMPRESSION_THREADS) as pool:
            pending: deque[Future] = deque()
            for block_index, block in enumerate(serialized_blocks(path, BLOCK_BYTES)):
                records = block.to_pylist()
                splits = (
                    np.full(len(records), fixed_split)
                    if fixed_split is not None
                    else example_records.split_of(records, self._buckets)
                )
                crcs = example_records.record_crcs(records)
                for split in np.unique(splits):
                    rows = np.flatnonzero(splits == split)
                    data = example_records.tfrecord_bytes(block.take(rows), crcs[rows])
                    name = f"data_tfrecord-{file_index:05d}-{block_index:05d}.gz"
                    pending.append(pool.submit(self._write, data, name, int(split)))
                    written[split] += len(rows)
                while len(pending) > 2 * COMPRESSION_THREADS:  # bounds memory to a few blocks
                    pending.popleft().result()
                logging.info("ExampleGen: %s: %d rows so far", path, written.sum())
            for future in pending:
                future.result()
        logging.info("ExampleGen: %s: rows per split %s", path, written.tolist())


def _output_plan(exec_properties: dict) -> tuple[list[str], list[int], list[Job]]:
    """The output split names, the cumulative hash buckets (empty when each input split is
    an output split), and a job per input file: its index, path and fixed split if any."""
    input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
    for key, message in [
        (standard_component_specs.INPUT_CONFIG_KEY, input_config),
        (standard_component_specs.OUTPUT_CONFIG_KEY, output_config),
    ]:
        proto_utils.json_to_proto(exec_properties[key], message)
    split_config = output_config.split_config
    if split_config.partition_feature_name:
        raise ValueError("ExampleGen splits by the whole record: drop partition_feature_name")
    names = example_gen_utils.generate_output_split_names(input_config, output_config)
    buckets = np.cumsum([split.hash_buckets for split in split_config.splits]).tolist()
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    jobs: list[Job] = []
    for split_index, split in enumerate(input_config.splits):
        pattern = os.path.join(base, split.pattern)
        paths = sorted(fileio.glob(pattern))
        if not paths:
            raise ValueError(f"no input file matches {pattern}")
        fixed = None if buckets else split_index
        jobs += [(len(jobs) + offset, path, fixed) for offset, path in enumerate(paths)]
    return names, buckets, jobs


class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for the prepared CFPB CSV; fingerprints what it read.

    TFX's Do sends every record through Beam's TFRecord sink, which cost more than reading
    and encoding; this Do sends blocks: Beam still spreads input files over workers.
    """

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        # Only TFX's own Do and GenerateExamplesByBeam call this, and Do is replaced below.
        raise NotImplementedError("this ExampleGen writes whole blocks in Do, not records")

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        self._log_startup(input_dict, output_dict, exec_properties)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        payload = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if file_format not in (None, *GZIPPED_TFRECORDS) or payload not in (None, TF_EXAMPLE):
            raise ValueError(
                f"ExampleGen writes tf.Examples in gzipped TFRecords, not file format "
                f"{file_format} with payload format {payload}"
            )
        split_names, buckets, jobs = _output_plan(exec_properties)
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        examples.split_names = artifact_utils.encode_split_names(split_names)
        split_uris = [artifact_utils.get_split_uri([examples], name) for name in split_names]
        staging = os.path.join(examples.uri, ".staging")
        for folder in [*split_uris, staging]:
            fileio.makedirs(folder)
        with self._make_beam_pipeline() as pipeline:
            _ = (
                pipeline
                | "InputFiles" >> beam.Create(jobs)
                | "SpreadFiles" >> beam.Reshuffle()
                | "WriteExamples" >> beam.ParDo(_WriteExampleFiles(split_uris, staging, buckets))
            )
        fileio.rmtree(staging)
        for uri in split_uris:  # a split no row fell into still gets a (readable, empty) file
            if not fileio.listdir(uri):
                with fileio.open(os.path.join(uri, "data_tfrecord-empty.gz"), "wb") as handle:
                    handle.write(example_records.gzip_bytes(b""))
        if payload:
            examples_utils.set_payload_format(examples, payload)
        if file_format:
            examples_utils.set_file_format(examples, write_split.to_file_format_str(file_format))
        paths = [path for _, path, _ in jobs]
        provenance.record_input_files(examples, paths)
        provenance.record_feedback(examples, paths)
