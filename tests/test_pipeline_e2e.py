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


def producer(store, artifact) -> tuple[str, object]:
    """The node that first produced an artifact, and that execution."""
    events = [
        e
        for e in store.get_events_by_artifact_ids([artifact.id])
        if e.type in lineage.OUTPUT_EVENTS
    ]
    execution = store.get_executions_by_id([min(e.execution_id for e in events)])[0]
    return lineage.node_id(store, execution.id), execution


def test_lineage_from_pushed_model_to_input_data(runs):
    config, store, _ = runs
    pushed = lineage.latest_pushed_model(store)
    assert pushed is not None
    node, pusher = producer(store, pushed)
    assert node == "Pusher"

    pusher_inputs = lineage.run_inputs(store, pusher.id)
    node, trainer = producer(store, pusher_inputs["model"][0])
    assert node == "Trainer"
    assert producer(store, pusher_inputs["model_blessing"][0])[0] == "Evaluator"

    trainer_inputs = lineage.run_inputs(store, trainer.id)
    assert producer(store, trainer_inputs["hyperparameters"][0])[0] == "Tuner"
    assert producer(store, trainer_inputs["transform_graph"][0])[0] == "Transform"
    node, transform = producer(store, trainer_inputs["examples"][0])
    assert node == "Transform"

    node, example_gen = producer(store, lineage.run_inputs(store, transform.id)["examples"][0])
    assert node == "ExampleGen"
    assert lineage.execution_property(example_gen, "input_base") == str(config.data_dir)

    upstream_nodes = {step.node_id for step in lineage.upstream(store, pushed.id)}
    assert {"Pusher", "Evaluator", "Trainer", "Tuner", "Transform", "SchemaGen", "ExampleGen"} <= (
        upstream_nodes
    )
