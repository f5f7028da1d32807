"""What the pipeline refuses: bad data stops it before Transform; a push is whole or absent.

Each bad data set is a small slice of the bundled sample with one real fault. The whole
pipeline runs on it (in this process, with LocalDagRunner) and must stop at the data gate
with the fault named, having trained and pushed nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import TINY_RUN_FLAGS, bundled_rows, write_rows

from models import features
from pipeline import lineage
from pipeline.config import PipelineConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runners"))
import beam_runner  # noqa: E402

ROWS_KEPT = 8  # every 8th row of the sample: about 800 rows


def drop_product(rows):
    return [{k: v for k, v in row.items() if k != "product"} for row in rows]


def blank_some_labels(rows):
    return [{**row, features.LABEL_KEY: ""} if i % 10 == 0 else row for i, row in enumerate(rows)]


def label_out_of_domain(rows):
    return [{**row, features.LABEL_KEY: "2"} if i % 10 == 0 else row for i, row in enumerate(rows)]


def label_as_words(rows):
    return [
        {**row, features.LABEL_KEY: "Yes" if row[features.LABEL_KEY] == "1" else "No"}
        for row in rows
    ]


def unknown_product(rows):
    return [
        {**row, "product": "Crypto wallet"} if i % 5 == 0 else row for i, row in enumerate(rows)
    ]


BAD_DATA = {
    "column dropped": (drop_product, ["product", "missing"]),
    "label missing": (blank_some_labels, [features.LABEL_KEY]),
    "label out of domain": (label_out_of_domain, [features.LABEL_KEY, "2"]),
    "label of the wrong type": (label_as_words, [features.LABEL_KEY, "STRING", '"No"']),
    "product outside its domain": (unknown_product, ["product", "Crypto wallet"]),
}


@pytest.mark.parametrize("fault", BAD_DATA)
def test_bad_data_stops_the_run_before_transform(fault, tmp_path, capsys, monkeypatch):
    make_bad, expected_words = BAD_DATA[fault]
    # Beam's absl flags read sys.argv: pytest's own -v would become --verbosity.
    monkeypatch.setattr(sys, "argv", ["beam_runner.py"])
    write_rows(make_bad(bundled_rows(every=ROWS_KEPT)), tmp_path / "data" / "complaints.csv")
    output_dir = tmp_path / "outputs"
    argv = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(output_dir), *TINY_RUN_FLAGS]

    assert beam_runner.main(argv, runner="LocalDagRunner") == 1
    message = capsys.readouterr().err
    assert "Data validation failed" in message
    for words in expected_words:
        assert words in message, message

    config = PipelineConfig(output_dir=str(output_dir))
    store = lineage.connect(config.metadata_connection_config())
    (run_id,) = lineage.run_ids(store, config.pipeline_name)
    states = {r.node_id: r.state for r in lineage.run_executions(store, run_id)}
    assert states["DataValidationGate"] == "FAILED"
    assert not {"Transform", "Tuner", "Trainer", "Evaluator", "Pusher"} & set(states)
    assert not Path(config.serving_model_dir).exists()


def test_a_crashed_push_leaves_no_partial_model(tmp_path, monkeypatch):
    from tfx.types import standard_artifacts
    from tfx.utils import io_utils

    from pipeline.push import AtomicPusherExecutor

    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    (tmp_path / "model" / "Format-Serving" / "variables").mkdir(parents=True)
    (tmp_path / "model" / "Format-Serving" / "variables" / "variables.index").write_text("v")
    (tmp_path / "model" / "Format-Serving" / "saved_model.pb").write_text("graph")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    serving = tmp_path / "serving_model"
    properties = {"push_destination": json.dumps({"filesystem": {"base_directory": str(serving)}})}

    def push() -> standard_artifacts.PushedModel:
        pushed = standard_artifacts.PushedModel()
        pushed.uri = str(tmp_path / "pushed")
        AtomicPusherExecutor().Do(
            {"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]}, properties
        )
        return pushed

    copy_file = io_utils.copy_file

    def crash_on_the_last_file(source, destination, *args, **kwargs):
        raise OSError("disk full")  # saved_model.pb is copied last

    monkeypatch.setattr(io_utils, "copy_file", crash_on_the_last_file)
    with pytest.raises(OSError):
        push()
    assert [p.name for p in serving.iterdir() if not p.name.startswith(".")] == []

    monkeypatch.setattr(io_utils, "copy_file", copy_file)
    pushed = push()
    (version,) = serving.iterdir()  # the staging folder is gone too
    assert (version / "saved_model.pb").read_text() == "graph"
    assert pushed.get_string_custom_property("pushed_destination") == str(version)


def test_schema_proposal_names_the_new_value_and_adds_it_to_the_domain(tmp_path):
    from pipeline import schema

    write_rows(unknown_product(bundled_rows(every=ROWS_KEPT)), tmp_path / "complaints.csv")
    problems, current, proposed = schema.propose(str(tmp_path))

    assert any(p.startswith("product:") and "Crypto wallet" in p for p in problems), problems
    assert "Crypto wallet" not in current and 'value: "Crypto wallet"' in proposed
    # The project's rules survive the update: the label stays 0/1, drift comparators stay.
    assert proposed.count("drift_comparator") == len(schema.DRIFT_THRESHOLDS)
    assert "min: 0\n    max: 1" in proposed
