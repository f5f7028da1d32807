"""python -m monitoring.rollout: enter a version as canary or shadow, promote it, roll it back,
or let its error rate, live skew and A/B verdict decide (auto).

Each change rewrites TF Serving's model config (labels, versions) and the rollout file together
(temporary files, then renames; put back if the server refuses), asks the server to reload
(POST /v1/admin/reload), and is recorded in MLMD as a RolloutDecision linked to the pushed
models involved, with its evidence (python -m lineage trace shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")  # dependencies' notices would bury the answer

from cli.bounds import Range, add_number, count, fraction  # noqa: E402
from monitoring import abtest, continuous, rollout_actions, rollout_checks  # noqa: E402
from monitoring.ab_log import ABTestError  # noqa: E402
from monitoring.comparisons import THRESHOLD_BOUNDS, MonitorError, Thresholds  # noqa: E402
from monitoring.serving_state import ServingChangeError, list_versions  # noqa: E402
from pipeline import config as pipeline_config  # noqa: E402
from pipeline.config import DEFAULT_OUTPUT_DIR, PipelineConfig  # noqa: E402

STORE_FIELDS = ("output_dir", "mysql_host", "mysql_port", "mysql_database", "mysql_user")
PROMOTED, ROLLED_BACK, BAD_INPUT, KEPT = 0, 1, 2, 3
EPILOG = """exit codes: 0 done (auto: promoted), 1 auto rolled the candidate back, 2 bad input or
refused (one line; files, server and rollout unchanged), 3 auto kept testing (nothing changed).
A rollback is 1 so that a scheduler shows it as a failed task: the candidate was worse."""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.rollout",
        description=__doc__.split(": ", 1)[1],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("the rollout: files, server, MLMD store")
    where.add_argument(
        "--model-config",
        type=Path,
        default=DEFAULT_OUTPUT_DIR / "models.config",
        help="TF Serving's model config the server reads (default: %(default)s)",
    )
    where.add_argument(
        "--rollout-file",
        type=Path,
        help="the server's --rollout_file (default: rollout.json beside it)",
    )
    where.add_argument("--model-name", help="the model (default: the rollout's; cfpb when new)")
    where.add_argument(
        "--url", default="http://127.0.0.1:8501", help="the server to reload (default: %(default)s)"
    )
    where.add_argument("--no-reload", action="store_true", help="write the files only")
    where.add_argument("--token-file", type=Path, help="its bearer token (--auth_token_file)")
    pipeline_config.add_config_arguments(where, STORE_FIELDS)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", parents=[common], help="labels, versions and the split")
    enter = commands.add_parser("enter", parents=[common], help="a version enters the trial")
    enter.add_argument(
        "--version",
        required=True,
        help="a version folder's number, or 'latest' (the newest folder)",
    )
    add_number(
        enter,
        "--canary-percent",
        default=0.0,
        bounds=Range(0.0, 100.0, meaning="percent of traffic"),
        help="share of traffic it answers (default 0)",
    )
    add_number(
        enter,
        "--shadow-fraction",
        bounds=fraction("a share of requests", above=True),
        help="share of the requests another version answers that it scores a copy of",
    )
    enter.add_argument(
        "--base-path",
        type=Path,
        default=DEFAULT_OUTPUT_DIR / "serving_model",
        help="the versions' folder, for a new model config (default: %(default)s)",
    )
    for name, what in (
        ("promote", "the candidate becomes stable"),
        ("rollback", "the candidate goes; stable takes all traffic"),
    ):
        sub = commands.add_parser(name, parents=[common], help=what)
        sub.add_argument("--reason", default="", help="why, recorded in MLMD")
    auto = commands.add_parser("auto", parents=[common], help="decide by the candidate's checks")
    auto.add_argument(
        "--request-log",
        type=Path,
        default=DEFAULT_OUTPUT_DIR / "request_log",
        help="the server's request log (default: %(default)s)",
    )
    auto.add_argument("--outcomes", type=Path, help="outcomes file for the A/B verdict")
    add_number(
        auto,
        "--max-error-rate",
        bounds=fraction("a share of requests"),
        default=0.05,
        help="roll back above this share of failed requests (default 0.05)",
    )
    add_number(
        auto,
        "--min-requests",
        bounds=count(1),
        default=100,
        help="requests (and rows, for skew) before those are judged (default 100)",
    )
    auto.add_argument(
        "--check-skew",
        action="store_true",
        help="also roll back on the monitor's live skew alert (MLMD baseline)",
    )
    defaults = Thresholds()
    for flag, name in (
        ("--skew-threshold", "skew_linf"),
        ("--prediction-psi-threshold", "prediction_psi"),
    ):
        add_number(
            auto,
            flag,
            bounds=THRESHOLD_BOUNDS[name],
            default=getattr(defaults, name),
            help=f"as python -m monitoring's (default {getattr(defaults, name)})",
        )
    abtest.add_rule_arguments(auto.add_argument_group("the A/B decision rule"))
    run = commands.add_parser(
        "enter-run",
        help="enter what the newest pipeline run pushed, as "
        "its --rollout says (the continuous-training DAG's task)",
    )
    pipeline_config.add_config_arguments(run)
    return parser


def open_store(args):
    from pipeline.metadata.store import connect

    config = PipelineConfig(**{name: getattr(args, name) for name in STORE_FIELDS})
    if not config.mysql_host and not config.metadata_path.is_file():
        raise ServingChangeError(
            f"no MLMD store at {config.metadata_path}: decisions are recorded in the store of "
            "the pipeline that pushed the versions (--output-dir, or --mysql-host)"
        )
    try:
        return connect(config.metadata_connection_config())
    except Exception as error:  # noqa: BLE001 (MLMD raises its own status errors)
        raise ServingChangeError(f"cannot open the MLMD store: {error}") from None


def target_of(args) -> rollout_actions.Target:
    return rollout_actions.Target(
        args.model_config,
        args.rollout_file or args.model_config.parent / "rollout.json",
        args.model_name,
        None if args.no_reload else args.url,
        args.token_file,
    )


def _version(text: str, base_path: Path, state) -> int:
    if text == "latest":
        stable = state.labels.get("stable") if state else None
        found = [v for v in list_versions(base_path) if v != stable]
        if not found:
            raise ServingChangeError(f"no version folder in {base_path} besides stable")
        return max(found)
    if not (text.isascii() and text.isdigit()):
        raise ServingChangeError(f"--version {text!r}: a version number, or 'latest'")
    if int(text) not in list_versions(base_path):
        raise ServingChangeError(f"--version {text}: no such version folder in {base_path}")
    return int(text)


def enter_run(args) -> int:
    """What the newest run pushed enters, as its --rollout says (continuous.enter_after_push)."""
    from pipeline.metadata.store import run_ids

    config = pipeline_config.config_from_arguments(args)
    store = open_store(args)
    runs = run_ids(store, config.pipeline_name)
    line = continuous.enter_after_push(config, store, runs[-1]) if runs else None
    failed = bool(line and line.startswith("error:"))
    print(
        line or f"rollout {config.rollout}: nothing to enter", file=sys.stderr if failed else None
    )
    return BAD_INPUT if failed else PROMOTED


def command(args) -> int:
    if args.command == "enter-run":
        return enter_run(args)
    target = target_of(args)
    if args.command == "status":
        print(json.dumps(rollout_actions.current(target).as_json(), indent=2))
        return PROMOTED
    store = open_store(args)
    model = args.model_name or continuous.MODEL_NAME
    token = args.token_file.read_text().strip() if args.token_file else None
    verdict = None
    if args.command == "enter":
        base = args.base_path.resolve()

        def read(found):
            return rollout_actions.current_or_new(found, base, model)

        def decide(state):
            version = _version(args.version, state.base_path, state)
            return rollout_actions.entering(
                state, version, args.canary_percent, args.shadow_fraction, "manual"
            )
    elif args.command == "auto":
        state = rollout_actions.current(target)
        if state.candidate is None:
            print(f"nothing to judge: model {state.model} has no canary or shadow label")
            return KEPT
        verdict = rollout_checks.judge(args, state, token)
        for note in verdict.notes:
            print(note)
        if verdict.decision == rollout_checks.KEEP_TESTING:
            print(f"keep testing: {verdict.reason}")
            return KEPT
        read = rollout_actions.current
        how = (
            rollout_actions.promoting
            if verdict.decision == rollout_checks.PROMOTE
            else rollout_actions.rolling_back
        )

        def decide(state):
            change = how(state, verdict.reason, verdict.trigger)
            change.evidence = verdict.evidence
            return change
    else:
        read = rollout_actions.current
        how = (
            rollout_actions.promoting if args.command == "promote" else rollout_actions.rolling_back
        )

        def decide(state):
            return how(state, args.reason, "manual")

    try:
        change, applied, execution = rollout_actions.execute(target, store, decide, read)
    except rollout_actions.AlreadyInForceError as unchanged:
        print(unchanged)
        return PROMOTED
    print(rollout_actions.summary(change, applied, execution, target))
    if verdict is not None and change.decision == "roll back":
        return ROLLED_BACK
    return PROMOTED


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return command(args)
    except (ServingChangeError, ABTestError, MonitorError, OSError) as error:
        print(f"rollout: {error}", file=sys.stderr)
        return BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
