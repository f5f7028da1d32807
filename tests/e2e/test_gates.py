"""What the pipeline refuses: bad data stops it before Transform.

Each bad data set is a small slice of the bundled sample with one real fault. The whole
pipeline runs on it (in this process, with LocalDagRunner) and must stop at the data gate
with the fault named, having trained and pushed nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import TINY_RUN_FLAGS, bundled_rows, write_rows
from support.faults import (
    ROWS_KEPT,
    blank_some_labels,
    drop_product,
    label_as_words,
    label_out_of_domain,
    unknown_product,
)

from lineage import store as lineage
from models import features
from pipeline import names, run
from pipeline.config import PipelineConfig

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

    assert run.main(argv, runner="LocalDagRunner") == 1
    message = capsys.readouterr().err
    assert "Data validation failed" in message
    for words in expected_words:
        assert words in message, message

    config = PipelineConfig(output_dir=str(output_dir))
    store = lineage.connect(config.metadata_connection_config())
    (run_id,) = lineage.run_ids(store, config.pipeline_name)
    states = {r.node_id: r.state for r in lineage.run_executions(store, run_id)}
    assert states[names.DATA_GATE] == "FAILED"
    assert not {names.TRANSFORM, names.TUNER, names.TRAINER, names.EVALUATOR, names.PUSHER} & set(
        states
    )
    assert not Path(config.serving_model_dir).exists()
