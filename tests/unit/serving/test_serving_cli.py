"""python -m serving takes TF Serving's flag names, in both spellings."""

from __future__ import annotations

import pytest

from serving.__main__ import main, make_parser
from serving.options import Options


def test_tf_serving_flags_with_underscores_or_dashes():
    args = make_parser().parse_args(
        [
            "--model_name=cfpb",
            "--model-base-path",
            "outputs/serving_model",
            "--rest_api_port=8601",
            "--port",
            "0",
            "--enable_batching=false",
            "--enable-request-log",
            "no",
            "--log_features=none",
            "--file-system-poll-wait-seconds=0.5",
        ]
    )
    options = Options(**vars(args))
    assert (options.model_name, options.model_base_path) == ("cfpb", "outputs/serving_model")
    assert (options.rest_api_port, options.port) == (8601, 0)
    assert options.enable_batching is False and options.enable_request_log is False
    assert options.log_features == "none" and options.file_system_poll_wait_seconds == 0.5
    assert options.host == "127.0.0.1"  # never the network unless asked


def test_bad_flags_are_refused(capsys):
    for bad in (["--log_features=some"], ["--enable_batching=maybe"], ["--port=x"]):
        with pytest.raises(SystemExit) as raised:
            make_parser().parse_args(bad)
        assert raised.value.code == 2
    assert main([]) == 2  # no model to serve
    assert "--model_base_path" in capsys.readouterr().err


def test_a_bad_rollout_file_at_start_is_one_line_and_exit_2(tmp_path, capsys):
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "cfpb" base_path: "serving_model" '
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } } }'
    )
    rollout = tmp_path / "rollout.json"
    cases = {
        '{"model": "cfpb", "split": {"stable": 90, "blue": 10}}': (
            f"error: --rollout_file {rollout}: label(s) 'blue' of the rollout are not labels of "
            "model cfpb in its model config (its labels: canary, stable)"
        ),
        '{"model": "cfpb", "split": {"stable": 90, "canary": 5}}': (
            f"error: --rollout_file {rollout}: the split's weights add up to 95, not 100"
        ),
        '{"model": "loans", "split": {"stable": 100}}': (
            f"error: --rollout_file {rollout}: model 'loans' is not served here (models: cfpb)"
        ),
    }
    for text, message in cases.items():
        rollout.write_text(text)
        with pytest.raises(SystemExit) as raised:
            main([f"--model_config_file={config}", f"--rollout_file={rollout}"])
        assert raised.value.code == 2
        assert capsys.readouterr().err.strip().splitlines() == [message]
    # A rollout names labels, which only a model config has.
    rollout.write_text('{"model": "cfpb", "split": {"stable": 100}}')
    with pytest.raises(SystemExit) as raised:
        main(["--model_base_path=serving_model", "--model_name=cfpb", f"--rollout_file={rollout}"])
    assert raised.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --rollout_file {rollout}: a rollout names version labels, which only a "
        "--model_config_file has; give one"
    ]
