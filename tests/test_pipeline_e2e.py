"""The real pipeline on real Beam and a real MLMD store, on a small slice of the bundled data.

Three runs share one output directory:
  first      everything executes; a blessed model is pushed; lineage reaches the input folder
  rerun      nothing changed: every component comes from the cache
  refused    more training steps and an AUC floor no model can reach: Trainer and what follows
             execute, the model is not blessed, and nothing new is pushed

The first two use BeamDagRunner (runners/beam_runner.py), the third LocalDagRunner
(runners/local_runner.py), so both runners execute for real over one cache.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_quarter_sample

from pipeline import lineage
from pipeline.config import PipelineConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMALL_RUN = [
    "--train-steps",
    "20",
    "--eval-steps",
    "4",
    "--tuner-trials",
    "1",
    "--tuner-train-steps",
    "10",
    "--min-auc",
    "0.0",
]
DOWNSTREAM_OF_TRAINING = {"Trainer", "Evaluator", "Pusher"}
RESOLVER = "LatestBlessedModelResolver"


def run_pipeline(
    data_dir: Path, output_dir: Path, *flags: str, runner: str = "beam_runner.py"
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "runners" / runner),
            "--data-dir",
            str(data_dir),
            "--output-dir",
            str(output_dir),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every 4th row of the bundled sample (about 1,650 rows), and the three runs."""
    data_dir = tmp_path_factory.mktemp("data")
    write_quarter_sample(data_dir)

    output_dir = tmp_path_factory.mktemp("outputs")
    config = PipelineConfig(data_dir=data_dir, output_dir=output_dir)
    first = run_pipeline(data_dir, output_dir, *SMALL_RUN)
    rerun = run_pipeline(data_dir, output_dir, *SMALL_RUN)
    refused_flags = [*SMALL_RUN, "--train-steps", "30", "--min-auc", "1.01"]
    refused = run_pipeline(data_dir, output_dir, *refused_flags, runner="local_runner.py")
    store = lineage.connect(config.metadata_connection_config())
    return config, store, (first, rerun, refused)


def states(store, run_id: str) -> dict[str, str]:
    return {record.node_id: record.state for record in lineage.run_executions(store, run_id)}


def test_first_run_pushes_a_blessed_model(runs):
    config, store, (first, _, _) = runs
    run_ids = lineage.run_ids(store, config.pipeline_name)
    assert len(run_ids) == 3
    first_states = states(store, run_ids[0])
    assert set(first_states) == {
        "ExampleGen",
        "StatisticsGen",
        "SchemaGen",
        "ExampleValidator",
        "Transform",
        "Tuner",
        "Trainer",
        RESOLVER,
        "Evaluator",
        "Pusher",
    }
    assert set(first_states.values()) == {"COMPLETE"}

    versions = list(Path(config.serving_model_dir).iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
    assert "Blessed: yes" in first.stdout
    assert f"Pushed to: {versions[0]}" in first.stdout
    assert "component" in first.stdout and "cached/executed" in first.stdout
    auc = float(first.stdout.split("auc: ")[1].split()[0])
    assert 0.0 <= auc <= 1.0


def test_rerun_with_nothing_changed_is_fully_cached(runs):
    config, store, (_, rerun, _) = runs
    rerun_states = states(store, lineage.run_ids(store, config.pipeline_name)[1])
    rerun_states.pop(RESOLVER)  # a resolver is a query, not a cacheable component
    assert set(rerun_states.values()) == {"CACHED"}, rerun_states
    assert rerun.stdout.count(" cached ") >= len(rerun_states)


def test_refused_model_is_not_pushed_and_upstream_stays_cached(runs):
    config, store, (_, _, refused) = runs
    refused_states = states(store, lineage.run_ids(store, config.pipeline_name)[2])
    refused_states.pop(RESOLVER)
    executed = {node for node, state in refused_states.items() if state == "COMPLETE"}
    assert executed == DOWNSTREAM_OF_TRAINING
    assert "Blessed: no" in refused.stdout
    assert "Pushed to: nothing pushed" in refused.stdout
    assert len(list(Path(config.serving_model_dir).iterdir())) == 1


def test_lineage_from_pushed_model_to_input_data(runs):
    config, store, _ = runs
    pushed = lineage.latest_pushed_model(store)
    assert pushed is not None
    node, pusher = lineage.producer(store, pushed.id)
    assert node == "Pusher"

    pusher_inputs = lineage.run_inputs(store, pusher.id)
    node, trainer = lineage.producer(store, pusher_inputs["model"][0].id)
    assert node == "Trainer"
    assert lineage.producer(store, pusher_inputs["model_blessing"][0].id)[0] == "Evaluator"

    trainer_inputs = lineage.run_inputs(store, trainer.id)
    assert lineage.producer(store, trainer_inputs["hyperparameters"][0].id)[0] == "Tuner"
    assert lineage.producer(store, trainer_inputs["transform_graph"][0].id)[0] == "Transform"
    node, transform = lineage.producer(store, trainer_inputs["examples"][0].id)
    assert node == "Transform"

    examples = lineage.run_inputs(store, transform.id)["examples"][0]
    node, example_gen = lineage.producer(store, examples.id)
    assert node == "ExampleGen"
    assert lineage.execution_property(example_gen, "input_base") == str(config.data_dir)

    upstream_nodes = {step.node_id for step in lineage.upstream(store, pushed.id)}
    assert {"Pusher", "Evaluator", "Trainer", "Tuner", "Transform", "SchemaGen", "ExampleGen"} <= (
        upstream_nodes
    )


def lineage_cli(config: PipelineConfig, *args: str, capsys) -> str:
    from pipeline import lineage_cli as command

    assert command.main(["--output-dir", str(config.output_dir), *args]) == 0
    return capsys.readouterr().out


def test_lineage_runs_lists_cached_and_executed_components(runs, capsys):
    config, _, _ = runs
    listed = json.loads(lineage_cli(config, "--json", "runs", capsys=capsys))
    assert [len(run["executed"]) for run in listed] == [10, 1, 4]  # the resolver always runs
    assert [len(run["cached"]) for run in listed] == [0, 9, 6]
    assert listed[0]["pushed_to"] is not None and listed[2]["pushed_to"] is None
    table = lineage_cli(config, "runs", capsys=capsys)
    assert "#3" in table and "Trainer, LatestBlessedModelResolver, Evaluator, Pusher" in table


def test_lineage_trace_reaches_the_input_file_content(runs, capsys):
    config, _, _ = runs
    found = json.loads(lineage_cli(config, "--json", "trace", "latest-pushed", capsys=capsys))
    (input_file,) = found["examples"]["input_files"]
    data_file = Path(config.data_dir) / "complaints.csv"
    assert input_file["sha256"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert found["examples"]["input_base"] == config.data_dir
    assert set(found["examples"]["split_counts"]) == {"train", "eval"}
    assert found["training"]["train_steps"] == 20
    assert found["training"]["hyperparameters"]  # the Tuner's choice
    assert (
        found["evaluation"]["blessed"] is True and 0 <= found["evaluation"]["metrics"]["auc"] <= 1
    )
    assert found["model"]["git_revision"] and found["model"]["package_versions"]["tfx"] == "1.16.0"
    assert found["pushed"][0]["destination"].startswith(config.serving_model_dir)
    text = lineage_cli(config, "trace", "latest-pushed", capsys=capsys)
    assert f"sha256 {input_file['sha256']}" in text


def test_lineage_uses_lists_the_blessed_and_the_refused_model(runs, capsys):
    config, _, _ = runs
    models = json.loads(lineage_cli(config, "--json", "uses", config.data_dir, capsys=capsys))
    assert [(m["blessed"], bool(m["pushed_to"])) for m in models] == [(True, True), (False, False)]


def test_lineage_diff_shows_changed_steps_and_metrics(runs, capsys):
    config, _, _ = runs
    found = json.loads(lineage_cli(config, "--json", "diff", "#2", "#3", capsys=capsys))
    assert found["settings"]["Trainer.train_args.num_steps"] == [20, 30]
    assert found["same_data"] is True and found["schema_changes"] == []
    assert all(d["value"] == 0 for d in found["drift"].values())  # same statistics artifact
    overall_auc = found["metrics"]["Overall"]["auc"]
    assert overall_auc[0] != overall_auc[1]  # a different model
    text = lineage_cli(config, "diff", "#2", "#3", capsys=capsys)
    assert "Trainer.train_args.num_steps: 20 -> 30" in text


def test_lineage_export_writes_json_dot_and_svg(runs, tmp_path, capsys):
    config, store, _ = runs
    lineage_cli(config, "export", "-o", str(tmp_path / "lineage.json"), capsys=capsys)
    graph = json.loads((tmp_path / "lineage.json").read_text())
    assert len(graph["executions"]) == len(store.get_executions())
    pusher_inputs = {
        event["key"]
        for event in graph["events"]
        for execution in graph["executions"]
        if event["execution_id"] == execution["id"]
        and execution["node_id"] == "Pusher"
        and event["direction"] == "input"
    }
    assert pusher_inputs == {"model", "model_blessing"}
    lineage_cli(config, "export", "-o", str(tmp_path / "lineage.svg"), capsys=capsys)
    assert "<svg" in (tmp_path / "lineage.svg").read_text()


def test_lineage_command_answers_bad_questions_plainly(runs, tmp_path):
    config, _, _ = runs

    def ask(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipeline.lineage_cli", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=PROJECT_ROOT,
        )

    unknown = ask("--output-dir", str(config.output_dir), "trace", "99999")
    assert unknown.returncode == 1 and "no artifact with id 99999" in unknown.stderr
    empty = ask("--output-dir", str(tmp_path), "runs")
    assert empty.returncode == 1 and "no MLMD store at" in empty.stderr
    assert "Traceback" not in unknown.stderr + empty.stderr
