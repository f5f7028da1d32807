"""python -m serving: serve pushed SavedModels with TF Serving's REST and gRPC APIs.

Flags are TF Serving's (tensorflow_model_server) where it has one; each is also accepted with
dashes (--model-name) and as --flag=value or --flag value.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from serving.options import Options

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # the saved Keras layers are tf-keras (Keras 2)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HELP = {
    "model_name": "name of the model in request URLs and gRPC model_spec",
    "model_base_path": "folder of integer version folders, e.g. outputs/serving_model",
    "model_config_file": "TF Serving model config (ModelServerConfig text format): several models, "
    "version policy, version labels (stable, canary); replaces --model_name/--model_base_path",
    "rollout_file": "rollout JSON beside the model config (serving/rollout.py): a traffic split "
    "between its labels by weight, sticky by complaint id, and an optional shadow label that "
    "scores a copy of the traffic without answering; re-read on reload",
    "model_version_policy": "latest, latest:N, all, or specific:V1,V2 (when no config file)",
    "host": "address both APIs bind to; 0.0.0.0 exposes them to the network",
    "port": "gRPC port (0: no gRPC)",
    "rest_api_port": "REST port (0: no REST)",
    "file_system_poll_wait_seconds": "how often the base path is polled for new versions "
    "(0: only at start and on reload)",
    "enable_batching": "merge concurrent requests into one model call (true/false)",
    "max_batch_size": "most examples in one merged model call",
    "batch_timeout_micros": "how long a model call waits for more requests to merge (0: never "
    "waits; merges only what is already queued)",
    "shadow_batch_timeout_micros": "how often a rollout's shadow copies are scored, all those "
    "queued meanwhile in one model call (nobody waits for their answers)",
    "num_batch_threads": "model calls that may run at once per version",
    "max_enqueued_examples": "examples that may wait for the model before requests get 503",
    "max_request_bytes": "largest REST body or gRPC message; bigger gets 413 / RESOURCE_EXHAUSTED",
    "max_instances": "most instances (examples) in one request; more gets 413",
    "max_in_flight": "predict requests served at once before new ones get 503",
    "grpc_threads": "gRPC worker threads",
    "enable_request_log": "log every prediction to SQLite (true/false)",
    "request_log_dir": "request log folder (default: request_log/ beside the model base path)",
    "log_features": "features kept in the request log: all; no_text (no narrative); none "
    "(only complaint_id)",
    "request_log_max_mb": "size at which the request log file is rotated",
    "request_log_keep": "rotated request log files kept",
    "request_log_sync": "SQLite synchronous setting: full (survives power loss) or normal "
    "(survives a killed process)",
    "auth_token_file": "file holding a bearer token required by every API but model status",
    "graceful_shutdown_seconds": "on SIGTERM, how long requests in flight may take to finish",
}
CHOICES = {"log_features": ("all", "no_text", "none"), "request_log_sync": ("full", "normal")}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def make_parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m serving",
        description=__doc__.strip().splitlines()[0].split(": ", 1)[1],
        epilog="Example: python -m serving --model_name=cfpb "
        "--model_base_path=outputs/serving_model --rest_api_port=8501 --port=8500",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for option in dataclasses.fields(Options):
        flags = [f"--{option.name}"]
        if "_" in option.name:
            flags.append(f"--{option.name.replace('_', '-')}")
        allowed = option.metadata.get("bounds")
        if str(option.type) in ("int", "float") and allowed is None:
            raise TypeError(f"Options.{option.name} is a number without a Range")
        kind = allowed.parse if allowed else _bool if str(option.type) == "bool" else str
        extra = {"nargs": "?", "const": True} if kind is _bool else {}
        result.add_argument(
            *flags,
            dest=option.name,
            type=kind,
            default=option.default,
            help=HELP.get(option.name, ""),
            choices=CHOICES.get(option.name),
            **extra,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from serving.server import run

    options = Options(**vars(args))
    if not options.model_config_file and not options.model_base_path:
        print("error: give --model_base_path (or --model_config_file)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
