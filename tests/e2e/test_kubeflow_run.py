"""The compiled KFP v2 spec runs: every task, through TFX's Kubeflow V2 container entrypoint.

tests/support/kfp_launcher.py plays the KFP backend's part (filling each task's ExecutorInput); the
commands and arguments are the spec's own, run with this environment's python as the
container would run the image's. Runtime parameters are set as at submission: the data
folder (a quarter of the sample) and the training arguments (7 steps) replace the values
compiled in.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import write_quarter_sample
from support.kfp_launcher import run_spec

from pipeline import names
from pipeline.config import PipelineConfig
from pipeline.pipeline import DATA_DIR_PARAMETER, TRAIN_ARGS_PARAMETER
from runners import kubeflow_runner

SUBMITTED_TRAIN_STEPS = 7  # fewer than 10 steps makes as many one-step epochs


@pytest.fixture(scope="module")
def kubeflow_run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("kfp_data")
    sample = write_quarter_sample(data_dir)
    output_dir = tmp_path_factory.mktemp("kfp_outputs")
    config = PipelineConfig(
        output_dir=str(output_dir),
        tuner_trials=1,
        tuner_train_steps=10,
        min_auc=0.0,
    )  # compiled with the bundled data and the default 300 training steps
    spec_file = kubeflow_runner.compile_pipeline(config, "unused-here", output_dir / "spec.json")
    spec = json.loads(spec_file.read_text())
    spec["runtimeConfig"]["parameterValues"] = {
        DATA_DIR_PARAMETER: str(data_dir),
        TRAIN_ARGS_PARAMETER: json.dumps({"splits": ["train"], "numSteps": SUBMITTED_TRAIN_STEPS}),
    }
    produced = run_spec(spec, output_dir / "pipeline_root", output_dir / "tasks.log")
    with open(sample, newline="", encoding="utf-8") as handle:
        sample_rows = sum(1 for _ in csv.DictReader(handle))
    return config, produced, sample_rows


def test_every_task_runs_and_a_blessed_model_is_pushed(kubeflow_run):
    config, produced, _ = kubeflow_run
    blessing = produced[(names.EVALUATOR, "blessing")][0]
    assert blessing["metadata"]["blessed"] == 1
    pushed = produced[(names.PUSHER, "pushed_model")][0]
    assert pushed["metadata"]["pushed"] == 1
    versions = list(Path(config.serving_model_dir).iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
    assert pushed["metadata"]["pushed_destination"] == str(versions[0])


def test_runtime_parameters_set_at_submission_are_used(kubeflow_run):
    import tensorflow_data_validation as tfdv

    _, produced, sample_rows = kubeflow_run
    statistics_uri = Path(produced[(names.STATISTICS_GEN, "statistics")][0]["uri"])
    examples = sum(
        tfdv.load_stats_binary(str(path)).datasets[0].num_examples
        for path in statistics_uri.glob("Split-*/FeatureStats.pb")
    )
    assert examples == sample_rows  # the submitted data-dir, not the bundled sample

    model_run = Path(produced[(names.TRAINER, "model_run")][0]["uri"])
    history = json.loads((model_run / "history.json").read_text())["history"]
    assert len(history["loss"]) == SUBMITTED_TRAIN_STEPS
