"""The check before TFX: a rerun is reported from the last run only when nothing it reads moved."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb
from support.mlmd_builder import StoreBuilder

from pipeline import names
from pipeline.config import PipelineConfig
from runners import cache_check


def a_store(tmp_path: Path) -> tuple[PipelineConfig, StoreBuilder]:
    """A config over one small data file, and an empty MLMD store in its output folder."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "complaints.csv").write_text("complaint_id,product\n1,Mortgage\n")
    config = PipelineConfig(data_dir=str(data), output_dir=str(tmp_path / "out"))
    Path(config.output_dir).mkdir()
    return config, StoreBuilder(Path(config.output_dir))


@pytest.fixture
def finished(tmp_path):
    """A config, its store with one successful run (its output on disk), and that run recorded."""
    config, builder = a_store(tmp_path)
    run = builder.run("run-1")
    examples = builder.artifact("Examples", "ExampleGen/examples/1")
    builder.execution(run, names.EXAMPLE_GEN, pb.Execution.COMPLETE, outputs=[("ex", examples)])
    cache_check.record(config, builder.store, "run-1", cache_check.fingerprint(config), 0)
    return config, builder, Path(examples.uri)


def unchanged(config: PipelineConfig, builder: StoreBuilder) -> str | None:
    return cache_check.unchanged_run(config, builder.store, cache_check.fingerprint(config))


def test_nothing_changed_names_the_last_run(finished):
    config, builder, _ = finished
    assert unchanged(config, builder) == "run-1"


def test_a_changed_setting_starts_tfx(finished):
    config, builder, _ = finished
    other = PipelineConfig(
        data_dir=config.data_dir, output_dir=config.output_dir, train_steps=config.train_steps + 1
    )
    assert unchanged(other, builder) is None


def test_a_changed_data_file_starts_tfx(finished):
    config, builder, _ = finished
    csv = Path(config.data_dir, "complaints.csv")
    csv.write_text(csv.read_text() + "2,Student loan\n")
    assert unchanged(config, builder) is None


def test_a_new_file_beside_the_data_starts_tfx(finished):
    config, builder, _ = finished
    Path(config.data_dir, "more.csv").write_text("complaint_id,product\n3,Mortgage\n")
    assert unchanged(config, builder) is None


def test_a_newer_execution_in_the_store_starts_tfx(finished):
    config, builder, _ = finished
    builder.execution(builder.run("rollout"), "RolloutDecision", pb.Execution.COMPLETE)
    assert unchanged(config, builder) is None


def test_a_deleted_output_starts_tfx(finished):
    config, builder, examples = finished
    shutil.rmtree(examples)
    assert unchanged(config, builder) is None


def test_a_missing_or_foreign_record_starts_tfx(finished):
    config, builder, _ = finished
    path = cache_check.record_path(config)
    path.write_text("{not json")
    assert unchanged(config, builder) is None
    path.unlink()
    assert unchanged(config, builder) is None


def test_runs_whose_result_is_more_than_the_store_are_never_skipped(finished):
    config, builder, _ = finished
    for changed in ({"rollout": "canary"}, {"mlflow_tracking_uri": "http://127.0.0.1:5000"}):
        other = PipelineConfig(data_dir=config.data_dir, output_dir=config.output_dir, **changed)
        assert not cache_check.applies(other)
        assert unchanged(other, builder) is None


def test_the_record_is_written_whole(finished):
    config, _, _ = finished
    leftovers = [p for p in os.listdir(config.output_dir) if p.endswith(".partial")]
    assert leftovers == [] and cache_check.record_path(config).is_file()


def test_a_run_that_shared_the_store_with_another_records_nothing(tmp_path):
    """A MySQL store two output folders use: what the other run added may change our next run."""
    config, builder = a_store(tmp_path)
    builder.execution(builder.run("run-1"), names.EXAMPLE_GEN, pb.Execution.COMPLETE)
    builder.execution(builder.run("elsewhere"), names.EVALUATOR, pb.Execution.COMPLETE)
    cache_check.record(config, builder.store, "run-1", cache_check.fingerprint(config), 0)
    assert not cache_check.record_path(config).exists()


def test_remote_data_is_never_skipped(finished):
    config, _, _ = finished
    remote = PipelineConfig(data_dir="gs://bucket/cfpb", output_dir=config.output_dir)
    assert cache_check.fingerprint(remote) is None


def test_a_new_span_in_a_linked_folder_starts_tfx(tmp_path):
    """Span folders that are symlinks: TFX's glob follows them, so the check must too."""
    real, data = tmp_path / "real", tmp_path / "data"
    (real / "span-1").mkdir(parents=True)
    (real / "span-1" / "c.csv").write_text("complaint_id,product\n1,Mortgage\n")
    data.mkdir()
    (data / "span-1").symlink_to(real / "span-1")
    config = PipelineConfig(
        data_dir=str(data), output_dir=str(tmp_path / "out"), input_pattern="span-{SPAN}/*.csv"
    )
    before = cache_check.fingerprint(config)
    (real / "span-1" / "c.csv").write_text("complaint_id,product\n1,Mortgage\n2,Payday loan\n")
    assert before is not None and cache_check.fingerprint(config) != before


def test_an_editors_dangling_lock_link_beside_the_code_is_ignored(finished, tmp_path, monkeypatch):
    config, _, _ = finished
    project = tmp_path / "project"
    (project / "pipeline").mkdir(parents=True)
    (project / "pipeline" / "config.py").write_text("X = 1\n")
    (project / "pipeline" / ".#config.py").symlink_to("user@host.123")  # Emacs: dangling
    monkeypatch.setattr(cache_check, "PROJECT", project)
    assert cache_check.fingerprint(config) is not None


def test_every_setting_that_names_a_file_is_an_input_or_never_skipped():
    named = {
        f.name for f in dataclasses.fields(PipelineConfig) if f.name.endswith(("_dir", "_file"))
    }
    rollout_only = {"rollout_file", "rollout_token_file"}  # read only with --rollout canary|shadow
    assert named == {*cache_check.INPUT_PATHS, "output_dir", *rollout_only}
