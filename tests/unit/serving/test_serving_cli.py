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
