"""A push is whole or absent: a crash mid-copy leaves no partial version folder."""

from __future__ import annotations

import json

import pytest


def test_a_crashed_push_leaves_no_partial_model(tmp_path, monkeypatch):
    from tfx.types import standard_artifacts
    from tfx.utils import io_utils

    from pipeline.components.push import AtomicPusherExecutor

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
