"""ExampleGen's block reader gives, byte for byte, what the row-by-row reference gives."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import _PartitionFn
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from models import features
from pipeline.components import example_gen
from pipeline.components.example_gen import Executor, row_to_example, serialized_blocks
from pipeline.config import BUNDLED_DATA_DIR

SAMPLE = BUNDLED_DATA_DIR / "complaints.csv"


def reference(path: Path) -> list[bytes]:
    """The row-by-row reading: Python's csv module, one tf.train.Example per row."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [row_to_example(row).SerializeToString(deterministic=True) for row in rows]


def serialized_examples(path: str, block_bytes: int = example_gen.BLOCK_BYTES) -> Iterator[bytes]:
    """ExampleGen's records of a CSV, one at a time."""
    for block in serialized_blocks(path, block_bytes):
        yield from block.to_pylist()


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize("block_bytes", [64 << 10, 8 << 20])  # many blocks, and one
def test_bundled_sample_matches_the_row_by_row_reader(block_bytes):
    assert list(serialized_examples(str(SAMPLE), block_bytes)) == reference(SAMPLE)


def test_hash_split_is_unchanged():
    """TFX picks the split from the record's bytes: the same rows land in train and eval."""
    split = example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
        ]
    )
    with open(SAMPLE, newline="", encoding="utf-8") as handle:
        old = [row_to_example(row) for row in csv.DictReader(handle)]
    new = list(serialized_examples(str(SAMPLE)))
    assignments = [
        (_PartitionFn(a, 2, [3, 4], split), _PartitionFn(b, 2, [3, 4], split))
        for a, b in zip(old, new, strict=True)
    ]
    assert all(o == n for o, n in assignments)
    assert {o for o, _ in assignments} == {0, 1}


def test_edge_rows_match(tmp_path):
    """Quoted newlines (LF and CRLF), non-ASCII, empty fields, a missing label, an extra
    column, and no zip_code column: every difference is kept for validation to report."""
    columns = [c for c in features.CANONICAL_COLUMNS if c != "zip_code"] + ["extra"]
    rows = [
        {c: "" for c in columns} | {"consumer_complaint_narrative": 'a "quoted"\nline\r\nend'},
        {c: "x" for c in columns} | {features.LABEL_KEY: "1", "company": "Crédit Agricole €"},
        {c: "y" for c in columns} | {features.LABEL_KEY: "0"},
    ]
    path = tmp_path / "edge.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    examples = list(serialized_examples(str(path)))
    assert examples == reference(path)
    parsed = [tf.train.Example.FromString(e).features.feature for e in examples]
    assert features.LABEL_KEY not in parsed[0] and "zip_code" not in parsed[0]
    assert parsed[1][features.LABEL_KEY].int64_list.value == [1]
    assert parsed[0]["consumer_complaint_narrative"].bytes_list.value == [
        b'a "quoted"\nline\r\nend'
    ]


def test_text_labels_stay_text_for_validation_to_report(tmp_path):
    path = write(tmp_path / "yes.csv", "complaint_id,consumer_disputed\n1,Yes\n2,\n3,No\n")
    assert list(serialized_examples(str(path))) == reference(path)


def test_mixed_label_types_are_refused_with_the_row(tmp_path):
    body = "".join(f"{n},0\n" for n in range(2000)) + "2000,Yes\n"
    path = write(tmp_path / "mixed.csv", "complaint_id,consumer_disputed\n" + body)
    with pytest.raises(ValueError, match=r"mixed.csv, row 2002: consumer_disputed 'Yes'"):
        list(serialized_examples(str(path), block_bytes=4096))  # the row is in a later block


def test_short_row_names_the_file(tmp_path):
    path = write(tmp_path / "short.csv", "complaint_id,product,consumer_disputed\n1,Card,0\n2\n")
    with pytest.raises(ValueError, match=r"short.csv cannot be read as a prepared CSV"):
        list(serialized_examples(str(path)))


def test_not_a_prepared_file_is_refused_before_reading(tmp_path):
    path = write(tmp_path / "raw.csv", "Date received,Product\n2015-01-01,Card\n")
    with pytest.raises(ValueError, match="not a prepared CFPB file"):
        list(serialized_examples(str(path)))


def run_executor(
    tmp_path: Path, splits: list[tuple[str, str]], hash_buckets: list[int], names=("train", "eval")
):
    """ExampleGen's executor on files under tmp_path/input; the Examples artifact it wrote."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    input_config = example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in splits]
    )
    output_config = example_gen_pb2.Output()
    for name, buckets in zip(names, hash_buckets, strict=False):
        output_config.split_config.splits.add(name=name, hash_buckets=buckets)
    Executor().Do(
        {},
        {standard_component_specs.EXAMPLES_KEY: [examples]},
        {
            standard_component_specs.INPUT_BASE_KEY: str(tmp_path / "input"),
            standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
            standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config),
            standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
            standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        },
    )
    return examples


def read_split(examples, name: str) -> list[bytes]:
    files = sorted((Path(examples.uri) / f"Split-{name}").iterdir())
    dataset = tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP")
    return [record.numpy() for record in dataset]


def test_executor_writes_every_row_once_in_its_hash_split(tmp_path, monkeypatch):
    monkeypatch.setattr(example_gen, "BLOCK_BYTES", 256 << 10)  # several blocks per file
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "complaints.csv").write_bytes(SAMPLE.read_bytes())
    examples = run_executor(tmp_path, [("all", "*.csv")], [3, 1])

    expected = reference(SAMPLE)
    split = example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
        ]
    )
    for index, name in enumerate(["train", "eval"]):
        # every row in its split, in the file's order
        assert read_split(examples, name) == [
            record for record in expected if _PartitionFn(record, 2, [3, 4], split) == index
        ]
    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "eval"]
    assert len(list((Path(examples.uri) / "Split-train").iterdir())) > 1
    assert sorted(p.name for p in Path(examples.uri).iterdir()) == ["Split-eval", "Split-train"]


def test_executor_keeps_input_splits_and_an_empty_split_is_readable(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    header = "complaint_id,product,consumer_disputed\n"
    write(folder / "a.csv", header + "1,Card,0\n2,Loan,1\n")
    write(folder / "b.csv", header)
    examples = run_executor(tmp_path, [("train", "a.csv"), ("eval", "b.csv")], [])
    assert read_split(examples, "train") == reference(folder / "a.csv")
    assert read_split(examples, "eval") == []


def test_executor_names_a_pattern_matching_nothing(tmp_path):
    (tmp_path / "input").mkdir()
    with pytest.raises(ValueError, match="no input file matches"):
        run_executor(tmp_path, [("all", "*.csv")], [3, 1])


def test_the_pipeline_splits_are_seventy_fifteen_fifteen_and_share_no_complaint(tmp_path):
    """train, validation and test, by hash: each complaint in exactly one, in the configured
    shares (within a binomial tolerance of the bundled sample's 6,596 rows)."""
    from pipeline.config import PipelineConfig

    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "complaints.csv").write_bytes(SAMPLE.read_bytes())
    names, buckets = zip(*PipelineConfig().split_buckets, strict=True)
    examples = run_executor(tmp_path, [("all", "*.csv")], list(buckets), names)
    rows, ids = {}, {}
    for name in names:
        parsed = [tf.train.Example.FromString(r) for r in read_split(examples, name)]
        rows[name] = len(parsed)
        # The extract without a Complaint ID column gives rows an empty id: those can't clash.
        found = [e.features.feature[features.ID_KEY].bytes_list.value[0] for e in parsed]
        ids[name] = {i for i in found if i}
        assert len(ids[name]) == sum(1 for i in found if i)  # no complaint twice in a split
    total = sum(rows.values())
    with open(SAMPLE, newline="", encoding="utf-8") as handle:
        assert total == sum(1 for _ in csv.DictReader(handle))
    for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not ids[a] & ids[b], f"a complaint in both {a} and {b}"
    for name, share in zip(names, buckets, strict=True):
        expected = total * share / 100
        tolerance = 4 * (total * share / 100 * (1 - share / 100)) ** 0.5  # 4 standard deviations
        assert abs(rows[name] - expected) < tolerance, (name, rows[name], expected)
