"""Configuration: the evaluation thresholds, the command line, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from models.features import LABEL_KEY
from pipeline import config as pipeline_config
from pipeline import names
from pipeline.components.evaluator import EvaluationSettings, evaluation_settings
from pipeline.components.provenance import (
    EXAMPLE_GEN_CODE,
    GATE_CODE,
    MODEL_CODE,
    code_fingerprint,
)
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.pipeline import create_pipeline

RUNNER = PROJECT_ROOT / "runners" / "beam_runner.py"


def test_the_evaluator_judges_by_the_configured_settings():
    config = pipeline_config.PipelineConfig(
        min_auc=0.58,
        max_auc_drop=0.01,
        strict_auc_comparison=True,
        bootstrap_resamples=500,
        seed=7,
        fairness_gate="tags: Older American; tags: Servicemember",
        min_slice_examples=30,
    )
    settings = evaluation_settings(config)
    assert (settings.min_auc, settings.max_auc_drop, settings.strict_auc_comparison) == (
        0.58,
        0.01,
        True,
    )
    assert (settings.resamples, settings.seed, settings.gate.min_examples) == (500, 7, 30)
    assert settings.gate.groups == ("tags: Older American", "tags: Servicemember")
    assert EvaluationSettings.from_json(settings.to_json()) == settings


def test_examples_split_seventy_fifteen_fifteen_by_default():
    assert PipelineConfig().split_buckets == [("train", 70), ("validation", 15), ("test", 15)]
    assert PipelineConfig(validation_percent=10, test_percent=20).split_buckets[0] == ("train", 70)


def test_flags_override_config(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    pipeline_config.add_config_arguments(parser)
    args = parser.parse_args(
        [
            "--train-steps",
            "7",
            "--direct_running_mode",
            "multi_processing",
            "--direct_num_workers",
            "2",
            "--beam-arg=--foo=1",
            "--output-dir",
            str(tmp_path),
            "--tune",
        ]
    )
    config = pipeline_config.config_from_arguments(args)
    assert config.train_steps == 7
    assert config.tune is True
    assert pipeline_config.config_from_arguments(parser.parse_args([])).tune is False
    assert config.output_dir == str(tmp_path)
    assert config.beam_pipeline_args == [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
        "--foo=1",
        f"--setup_file={pipeline_config.PROJECT_ROOT / 'setup.py'}",
    ]
    assert config.metadata_connection_config().sqlite.filename_uri == str(
        tmp_path / "metadata.sqlite"
    )
    # A scheduler passes a config on as flags: they rebuild the same config.
    again = parser.parse_args(pipeline_config.config_arguments(config))
    assert pipeline_config.config_from_arguments(again) == config


def test_tfx_packages_itself_for_remote_beam_workers_only():
    """A dependency flag keeps TFX from building an sdist of itself in every Beam component;
    DirectRunner ignores it, and a remote runner gets TFX's own handling (or the user's)."""
    local = pipeline_config.PipelineConfig()
    assert any(arg.startswith("--setup_file=") for arg in local.beam_pipeline_args)
    remote = pipeline_config.PipelineConfig(extra_beam_args=("--runner=DataflowRunner",))
    assert not any(arg.startswith("--setup_file=") for arg in remote.beam_pipeline_args)


def test_mysql_connection_takes_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv(pipeline_config.MYSQL_PASSWORD_ENV, "s3cret")
    config = pipeline_config.PipelineConfig(mysql_host="db.internal", mysql_database="lineage")
    connection = config.metadata_connection_config()
    assert connection.mysql.host == "db.internal"
    assert connection.mysql.database == "lineage"
    assert connection.mysql.password == "s3cret"
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("patterns", "edited"),
    [
        (MODEL_CODE, "models/model.py"),
        (EXAMPLE_GEN_CODE, "pipeline/components/example_gen.py"),
        (GATE_CODE, "pipeline/components/gates.py"),
    ],
)
def test_code_fingerprint_follows_the_code_behind_each_cached_result(patterns, edited, tmp_path):
    (tmp_path / edited).parent.mkdir(parents=True)
    (tmp_path / edited).write_text("A = 1\n")
    before = code_fingerprint(patterns, root=tmp_path)
    (tmp_path / edited).write_text("A = 2\n")
    assert code_fingerprint(patterns, root=tmp_path) != before


def test_example_gen_and_the_gate_carry_their_code_fingerprint(tmp_path):
    """Their cache keys held only class paths: an edited executor reused stale results."""
    components = {
        c.id: c for c in create_pipeline(PipelineConfig(output_dir=str(tmp_path))).components
    }
    example_gen = components[names.EXAMPLE_GEN].exec_properties["custom_config"]
    assert code_fingerprint(EXAMPLE_GEN_CODE) in str(example_gen)
    gate = components[names.DATA_GATE].exec_properties["code_fingerprint"]
    assert gate == code_fingerprint(GATE_CODE)


def run_runner(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RUNNER), *flags], capture_output=True, text=True, timeout=300
    )


def test_help_documents_the_flags():
    result = run_runner("--help")
    assert result.returncode == 0
    for flag in (
        "--data-dir",
        "--output-dir",
        "--train-steps",
        "--tuner-trials",
        "--direct_num_workers",
        "--direct_running_mode",
        "--beam-arg",
    ):
        assert flag in result.stdout


def test_bad_flags_and_paths_fail_with_a_clear_message(tmp_path):
    missing = run_runner("--data-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    empty = run_runner("--data-dir", str(tmp_path))
    assert empty.returncode == 2 and "holds no file matching *.csv" in empty.stderr
    steps = run_runner("--train-steps", "0")
    assert steps.returncode == 2
    assert "argument --train-steps: must be an integer from 1 to" in steps.stderr
    mode = run_runner("--direct_running_mode", "fast")
    assert mode.returncode == 2 and "invalid choice" in mode.stderr
    assert "Traceback" not in missing.stderr + empty.stderr + steps.stderr + mode.stderr


def test_the_mlmd_password_is_masked_in_logs(caplog):
    import logging

    logger = logging.getLogger("absl")
    pipeline_config.redact_passwords_in_logs()
    with caplog.at_level(logging.INFO, logger="absl"):
        logger.info("Using connection config:\n %s", 'mysql {\n  password: "s3cret"\n}')
    assert "s3cret" not in caplog.text and 'password: "***"' in caplog.text


@pytest.mark.parametrize(
    "password",
    ['super"secret123', 'back\\slash"and"quotes', "ünïcødé-pässwörd", "end\\", '"'],
)
def test_passwords_with_quotes_backslashes_and_unicode_are_masked(password, caplog, monkeypatch):
    """The log read password: "***"supersecret123" with a quote-stopping pattern (issue 11.8)."""
    import logging

    monkeypatch.setenv(pipeline_config.MYSQL_PASSWORD_ENV, password)
    config = pipeline_config.PipelineConfig(mysql_host="db.internal")
    logger = logging.getLogger("absl")
    redactor = pipeline_config.PasswordRedactor()
    logger.addFilter(redactor)
    try:
        with caplog.at_level(logging.INFO, logger="absl"):
            # As TFX logs it: the connection config proto, as text.
            logger.info(
                "MetadataStore with connection config: %s", config.metadata_connection_config()
            )
    finally:
        logger.removeFilter(redactor)
    logged = caplog.text
    assert 'password: "***"' in logged
    text = logged.split("password:", 1)[1].splitlines()[0]
    assert text.strip() == '"***"', text
    # The same password in JSON is masked too, and other text is left alone.
    json_line = json.dumps({"user": "root", "password": password})
    masked = redactor.PASSWORD.sub(r'\1"***"', json_line)
    assert masked == '{"user": "root", "password": "***"}'


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--min-auc", "2"], "--min-auc: must be a number from 0 to 1 (an AUC), not 2"),
        (["--min-auc", "nan"], "--min-auc: must be a number from 0 to 1 (an AUC), not nan"),
        (["--max-auc-drop", "-1"], "--max-auc-drop: must be a number from 0 to 1"),
        (["--test-percent", "0"], "--test-percent: must be an integer from 5 to 40 (percent)"),
        (["--span", "2"], "--span needs {SPAN} in --input-pattern"),
        (["--span", "9", "--input-pattern", "span-{SPAN}/*.csv"], "--span 9: no file under"),
    ],
)
def test_settings_that_can_never_bless_are_refused(flags, words):
    """They used to run the whole pipeline and never bless (issue 11.12)."""
    result = run_runner(*flags)
    assert result.returncode == 2 and words in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_output_and_unreachable_mysql_get_one_line(tmp_path):
    """OSError, C++ error blocks and a traceback before (issue 11.10)."""
    a_file = tmp_path / "file"
    a_file.write_text("")
    unwritable = run_runner("--output-dir", str(a_file / "outputs"))
    assert unwritable.returncode == 2 and "is not writable" in unwritable.stderr
    read_only = run_runner("--output-dir", "/proc/cfpb-outputs")  # a read-only file system
    assert read_only.returncode == 2 and "is not writable" in read_only.stderr
    unreachable = run_runner(
        "--output-dir", str(tmp_path / "out"), "--mysql-host", "127.0.0.1", "--mysql-port", "1"
    )
    assert unreachable.returncode == 2
    assert "cannot reach MySQL for MLMD at 127.0.0.1:1" in unreachable.stderr
    for result in (unwritable, read_only, unreachable):
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("beam_runner.py: error: ")


def test_a_second_run_into_a_locked_folder_is_refused_and_leaves_nothing(tmp_path):
    """The refusal came after ~40 s of imports and left a log in the other run's folder."""
    import fcntl

    from pipeline.config import PipelineConfig

    output_dir = tmp_path / "outputs"
    output_dir.mkdir()
    lock_path = output_dir / f".{PipelineConfig.pipeline_name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run in progress
        result = run_runner("--output-dir", str(output_dir))
    assert result.returncode == 1 and "Another run of cfpb-dispute is using" in result.stderr
    assert sorted(p.name for p in output_dir.iterdir()) == [lock_path.name]
    assert "Traceback" not in result.stderr


def test_integer_and_word_labels_in_one_data_folder_are_refused_before_the_run(tmp_path):
    """One good CSV plus one with Yes/No labels crashed StatisticsGen (issue 11.5)."""
    from conftest import bundled_rows, write_rows

    rows = bundled_rows(every=40)
    write_rows(rows, tmp_path / "data" / "a.csv")
    words = [{**row, LABEL_KEY: "Yes" if row[LABEL_KEY] == "1" else "No"} for row in rows]
    write_rows(words, tmp_path / "data" / "b.csv")
    result = run_runner("--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr[-2000:]
    first_word = words[0][LABEL_KEY]
    assert f"{tmp_path / 'data' / 'b.csv'}, row 2: {LABEL_KEY} is {first_word!r}" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_checks_read_only_the_newest_span_and_name_a_late_nul_byte(tmp_path):
    """An old span (word labels) blocked every later run; a NUL past 8 KB gave a traceback."""
    from conftest import bundled_rows, write_rows

    from pipeline import preflight

    rows = bundled_rows(every=40)
    words = [{**row, LABEL_KEY: "Yes" if row[LABEL_KEY] == "1" else "No"} for row in rows]
    write_rows(words, tmp_path / "span-1" / "complaints.csv")
    newest = write_rows(rows, tmp_path / "span-2" / "complaints.csv")
    config = PipelineConfig(data_dir=str(tmp_path), input_pattern="span-{SPAN}/*.csv")
    assert preflight.input_files(config) == [newest]
    assert preflight.data_problems(config) == []
    newest.write_bytes(newest.read_bytes() + b"\x00" + b"x" * 10 + b"\n")
    (problem,) = preflight.data_problems(config)
    assert problem.startswith(f"{newest}, line ") and "not a readable CSV" in problem


def test_a_word_label_after_many_integer_rows_in_one_file_is_named_by_row(tmp_path):
    """The label check reads the label column in blocks: a late word is still found."""
    from pipeline import preflight

    path = tmp_path / "mixed.csv"
    body = "".join(f'{n},"two\nlines",0\n' for n in range(50_000)) + "50000,x,Yes\n"
    path.write_text("complaint_id,consumer_complaint_narrative," + LABEL_KEY + "\n" + body)
    problem = preflight.label_type_problem([path])
    assert problem.startswith(f"{path}, row 50002: {LABEL_KEY} is 'Yes', while {path} has 0/1")
    words = tmp_path / "words.csv"
    words.write_text(f"complaint_id,{LABEL_KEY}\n1,Yes\n2,No\n")
    assert preflight.label_type_problem([words]) is None  # all words: the data gate names them


@pytest.mark.parametrize(
    ("group", "words"),
    [
        (
            "tags: Older Americans",
            "--fairness-gate: no complaint in {data} is in group 'tags: Older Americans'; "
            "its groups are: tags: (none); tags: Older American; "
            "tags: Older American, Servicemember; tags: Servicemember",
        ),
        ("tag: Older American", "--fairness-gate: tag: 'Older American' is not a group"),
    ],
)
def test_a_fairness_gate_group_that_matches_nothing_stops_the_run(group, words, tmp_path):
    """It was 'not judged' and the model blessed: a typo silently switched the gate off."""
    result = run_runner("--output-dir", str(tmp_path / "out"), "--fairness-gate", group)
    data = PipelineConfig().data_dir
    assert result.returncode == 2 and words.format(data=data) in result.stderr, result.stderr
    assert not (tmp_path / "out" / "logs").exists()  # nothing ran


def test_fairness_gate_groups_of_the_data_pass_the_check():
    from pipeline import preflight

    config = PipelineConfig(fairness_gate="tags: Older American; tags: (none); product: Mortgage")
    assert preflight.fairness_gate_problems(config, preflight.input_files(config)) == []


def test_a_port_that_is_not_mysql_is_named_in_seconds(tmp_path):
    """Accepting TCP is not being MySQL: MLMD said 'mysql_real_connect failed' after 17 s."""
    import socket
    import threading
    import time

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer_http() -> None:  # what a web server on a mistyped port says
            for _ in range(3):
                connection, _ = listener.accept()
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                connection.close()

        threading.Thread(target=answer_http, daemon=True).start()
        started = time.monotonic()
        result = run_runner(
            *("--output-dir", str(tmp_path / "out"), "--mysql-host", "127.0.0.1"),
            *("--mysql-port", str(port)),
        )
    assert result.returncode == 2 and time.monotonic() - started < 15
    assert (
        f"MySQL for MLMD at 127.0.0.1:{port} does not answer as a MySQL server"
        in (result.stderr.strip().splitlines()[-1])
    )
    assert "Traceback" not in result.stderr
