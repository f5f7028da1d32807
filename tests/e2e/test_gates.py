"""What the pipeline refuses: bad data stops it before Transform; an unfair model is not pushed.

Each bad data set is a small slice of the bundled sample with one real fault. The whole
pipeline runs on it (in this process, with LocalDagRunner) and must stop at the data gate
with the fault named, having trained and pushed nothing. The fairness gate is tested on data
with a forced gap: one group's label relation is the reverse of everyone else's.
"""

from __future__ import annotations

import shutil
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

from lineage import schema_diff, schema_proposal
from models import features
from pipeline import names
from pipeline.config import SCHEMA_FILE, PipelineConfig
from pipeline.metadata import store as lineage
from runners import local_run

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

    assert local_run.main(argv, runner="LocalDagRunner") == 1
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


def run_states(output_dir: Path, run_number: int = -1) -> dict[str, str]:
    config = PipelineConfig(output_dir=str(output_dir))
    store = lineage.connect(config.metadata_connection_config())
    run_id = lineage.run_ids(store, config.pipeline_name)[run_number]
    return {r.node_id: r.state for r in lineage.run_executions(store, run_id)}


def test_an_accepted_schema_change_is_used_on_the_same_output_folder(tmp_path, capsys, monkeypatch):
    """The documented remedy for a new product (docs/safety.md): propose --write, run again."""
    monkeypatch.setattr(sys, "argv", ["beam_runner.py"])
    write_rows(unknown_product(bundled_rows(every=ROWS_KEPT)), tmp_path / "data" / "complaints.csv")
    schema_file = tmp_path / "schema.pbtxt"
    shutil.copy(SCHEMA_FILE, schema_file)
    argv = [
        *("--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "outputs")),
        *("--schema-file", str(schema_file), *TINY_RUN_FLAGS),
    ]
    assert local_run.main(argv, runner="LocalDagRunner") == 1
    assert "Crypto wallet" in capsys.readouterr().err

    # SchemaGen ran before the gate stopped the run: the difference names the new product
    config = PipelineConfig(output_dir=str(tmp_path / "outputs"))
    store = lineage.connect(config.metadata_connection_config())
    (run_id,) = lineage.run_ids(store, config.pipeline_name)
    changes = schema_diff.run_difference(store, run_id)
    assert [(c.feature, c.kind) for c in changes] == [("product", "new values")]
    assert "'Crypto wallet'" in changes[0].detail
    # propose builds on that run's difference, inferring nothing again (issue 16.1)
    propose = [
        "propose",
        "--output-dir",
        str(tmp_path / "outputs"),
        "--schema-file",
        str(schema_file),
    ]
    assert schema_proposal.main([*propose, "--write"]) == 0
    assert "Crypto wallet" in schema_file.read_text()
    assert local_run.main(argv, runner="LocalDagRunner") == 0, capsys.readouterr().err
    states = run_states(tmp_path / "outputs")
    assert states[names.SCHEMA_IMPORTER] == "COMPLETE"  # executed again, not from the cache
    assert states[names.DATA_GATE] == "COMPLETE" and states[names.PUSHER] == "COMPLETE"


def forced_gap(rows: list[dict], group: str) -> list[dict]:
    """Every 3rd row tagged `group`; `company` gives the label away, reversed for the group.

    A model learns the majority's rule, so it ranks the group's disputes last: the group's AUC
    is far below the overall AUC and its FNR far above.
    """
    forced = []
    for i, row in enumerate(rows):
        tagged = i % 3 == 0
        disputed = row[features.LABEL_KEY] == "1"
        company = "Company A" if disputed != tagged else "Company B"
        forced.append({**row, features.TAGS_KEY: group if tagged else "", "company": company})
    return forced


def test_the_fairness_gate_refuses_a_model_with_a_forced_gap(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["beam_runner.py"])
    group = "Older American"
    write_rows(forced_gap(bundled_rows(every=4), group), tmp_path / "data" / "complaints.csv")
    argv = [
        *("--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "outputs")),
        *TINY_RUN_FLAGS,
        *("--train-steps", "80", "--min-slice-examples", "50"),
    ]
    gate = ["--fairness-gate", f"tags: {group}", "--fairness-max-auc-gap", "0.1"]
    assert local_run.main([*argv, *gate], runner="LocalDagRunner") == 0, capsys.readouterr().err
    console = capsys.readouterr().out
    assert "Blessed: no" in console and "Pushed to: nothing pushed" in console
    refusal = console.split(f"refused: fairness: tags: {group} auc ")[1].splitlines()[0]
    assert "below overall" in refusal and "at most 0.1000 is allowed" in refusal
    assert f"refused: fairness: tags: {group} fnr " in console
    config = PipelineConfig(output_dir=str(tmp_path / "outputs"))
    assert not Path(config.serving_model_dir).exists()

    # The same model without the fairness gate is blessed: the gate alone refused it.
    assert local_run.main(argv, runner="LocalDagRunner") == 0, capsys.readouterr().err
    console = capsys.readouterr().out
    assert "Blessed: yes" in console and "refused:" not in console
    states = run_states(tmp_path / "outputs")
    assert states[names.TRAINER] == "CACHED" and states[names.EVALUATOR] == "COMPLETE"
    (version,) = Path(config.serving_model_dir).iterdir()
    assert (version / "model_card.html").is_file()
