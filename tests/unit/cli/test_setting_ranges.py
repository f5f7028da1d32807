"""Every numeric setting of every command has a Range: nan, inf and negatives get one line.

Commands are found by their `make_parser()`, so a new command is walked without editing this
file; a numeric flag without a Range fails `test_no_command_has_a_numeric_flag_without_a_range`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import os
import re
import subprocess
import sys

import pytest

from cli import bounds
from pipeline.config import PROJECT_ROOT, PipelineConfig
from runners import airflow_settings

SOURCES = ("cli", "data", "feedback", "lineage", "monitoring", "pipeline", "runners", "serving")
BAD_VALUES = ("nan", "inf", "-inf", "-1", "1e300")


def command_modules() -> list[str]:
    """Modules of the project that define make_parser(): one per command."""
    found = []
    for folder in SOURCES:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            if re.search(r"^def make_parser\(", path.read_text(), re.MULTILINE):
                module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
                found.append(module)
    return found


COMMANDS = command_modules()


def parser_of(module: str) -> argparse.ArgumentParser:
    made = importlib.import_module(module).make_parser
    return made("BeamDagRunner") if module == "runners.local_run" else made()


def ranged_flags() -> list[tuple[str, list[str], str]]:
    """(command, subcommand path, flag) of every flag parsed through a Range."""
    walked = []
    for module in COMMANDS:
        for action, path in _with_paths(parser_of(module), []):
            if isinstance(getattr(action.type, "__self__", None), bounds.Range):
                walked.append((module, path, action.option_strings[0]))
    return walked


def _with_paths(parser: argparse.ArgumentParser, path: list[str]):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _with_paths(sub, [*path, name])
        else:
            yield action, path


def test_every_command_is_found():
    assert {
        "runners.local_run",
        "runners.kubeflow_runner",
        "serving.__main__",
        "monitoring.monitor",
        "feedback.join",
        "feedback.replay",
        "lineage.command",
        "data.prepare",
        "data.download",
        "lineage.schema_proposal",
    } <= set(COMMANDS)


@pytest.mark.parametrize("module", COMMANDS)
def test_no_command_has_a_numeric_flag_without_a_range(module):
    assert bounds.numeric_without_range(parser_of(module)) == []


FLAGS = ranged_flags()


@pytest.mark.parametrize(("module", "path", "flag"), FLAGS, ids=[f"{m}{f}" for m, _, f in FLAGS])
@pytest.mark.parametrize("value", BAD_VALUES)
def test_each_numeric_flag_refuses_nan_inf_negative_and_absurd_values(
    module, path, flag, value, capsys
):
    with pytest.raises(SystemExit) as stopped:
        parser_of(module).parse_args([*path, f"{flag}={value}"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(rf"error: argument {re.escape(flag)}\S*: must be an? ", error), error
    assert error.endswith(f"not {value}") or error.endswith(f"not {value!r}"), error


def test_every_numeric_setting_of_the_runners_has_a_range_and_a_sound_default():
    numeric = [
        f
        for f in dataclasses.fields(PipelineConfig)
        if type(f.default) in (int, float) and not isinstance(f.default, bool)
    ]
    assert numeric and all(f.metadata["bounds"] for f in numeric)
    assert all(f.metadata["bounds"].problem(f.default) is None for f in numeric)
    with pytest.raises(TypeError, match="needs a Range"):
        from pipeline.config import _option

        _option(3, "a new numeric setting without a range")


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_airflow_variables_get_the_same_ranges(monkeypatch, value):
    """CFPB_* settings reach the config through the same Range as the flags."""

    def from_environment(name: str, default: str | None = None) -> str | None:
        return os.environ.get(airflow_settings.SETTING_PREFIX + name.upper(), default)

    monkeypatch.setattr(airflow_settings, "setting", from_environment)  # not Airflow's database
    for field in dataclasses.fields(PipelineConfig):
        if not field.metadata.get("bounds"):
            continue
        name = airflow_settings.SETTING_PREFIX + field.name.upper()
        with monkeypatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(ValueError, match=rf"^{name} must be an? .* not {value}"):
                airflow_settings.config_from_settings()
    for name in airflow_settings.TRAINING_DAG_NUMBERS:
        with monkeypatch.context() as env:
            env.setenv(airflow_settings.SETTING_PREFIX + name.upper(), value)
            with pytest.raises(ValueError, match=rf"CFPB_{name.upper()} must be"):
                airflow_settings.number_setting(name)


def test_a_config_built_in_code_is_checked_too():
    """The notebook builds PipelineConfig itself: nan would switch the fairness gate off."""
    from pipeline.pipeline import create_pipeline

    with pytest.raises(ValueError, match="--fairness-max-auc-gap must be a number from 0 to 1"):
        create_pipeline(PipelineConfig(fairness_max_auc_gap=math.nan))


def test_nan_fairness_gap_is_refused_by_the_runner_before_anything_runs(tmp_path):
    """It used to bless and push a model that 0.05 refuses (issue 23.1)."""
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "runners" / "beam_runner.py"),
            *("--output-dir", str(tmp_path / "out"), "--fairness-max-auc-gap", "nan"),
            *("--fairness-gate", "tags: Older American"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "beam_runner.py: error: argument --fairness-max-auc-gap: must be a number from 0 to 1 "
        "(an AUC difference), not nan"
    )
    assert not (tmp_path / "out").exists()


def test_range_messages_name_the_allowed_values():
    auc = bounds.fraction("an AUC")
    assert auc.problem(0.5) is None and auc.problem(1) is None
    assert auc.problem(math.nan) == "must be a number from 0 to 1 (an AUC), not nan"
    assert bounds.count(1, 10).problem(2.5) == "must be an integer from 1 to 10, not 2.5"
    assert bounds.PORT.problem(True) == "must be an integer from 1 to 65,535 (a TCP port), not True"
    assert bounds.Range(0, 1, above=True).problem(0.0) == (
        "must be a number above 0 and at most 1, not 0"
    )
