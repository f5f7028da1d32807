"""python -m monitoring.abtest: is the candidate version better than the stable one, on the
outcomes that arrived since they served?

Joins the server's request log (format cfpb-request-log/2: each row names the arm that
answered it, or that shadowed it) with an outcomes file by complaint id, as the feedback loop
does, and reports per arm (label and version): requests, outcomes known, dispute rate, AUC with
a 95% interval, calibration, precision and recall at the version's own decision threshold,
latency p50 and p99; on shadowed complaints (both versions scored the same rows) a paired
comparison of AUC. It ends with a decision and its reason: promote, keep testing (with the
outcomes still needed), or roll back. Text on stdout; --json and --html (a self-contained page)
written whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from cli.atomic import atomic_write
from cli.bounds import SEED, add_number, count, fraction
from monitoring import ab_stats, ab_views
from monitoring.ab_log import ABTestError, Logged, check_matches, read_labels, read_log
from monitoring.ab_stats import KEEP_TESTING, PROMOTE, ROLL_BACK, Arm, Rule
from monitoring.comparisons import MonitorError
from monitoring.serving_state import STABLE, ServingChangeError, ServingState, read_state
from monitoring.window import window_bounds
from pipeline.config import DEFAULT_OUTPUT_DIR

EXIT_CODES = {PROMOTE: 0, ROLL_BACK: 1, KEEP_TESTING: 3}
CANNOT_JUDGE = 2
THRESHOLD_FILE = "decision_threshold.json"  # models/trainer.py writes it beside the SavedModel
EPILOG = """exit codes, for a scheduler:
  0  promote: the candidate is not worse than control by more than --max-auc-drop (95%)
  1  roll back: the candidate is worse than control by more than --max-auc-drop (95%)
  2  cannot judge: bad input (no log, a log from before the rollout format, outcomes that match
     no logged complaint, no request served by the control...), one line on stderr
  3  keep testing: too few outcomes, or an interval that still contains -max-auc-drop; the
     report says about how many more outcomes are needed
0 and 1 are an answer to act on (a failure is 1, as in python -m monitoring); 2 is the
project's code for bad input; 3 is "not yet", which Airflow can map to a skipped task."""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.abtest",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    data = parser.add_argument_group("input")
    data.add_argument(
        "--request-log",
        type=Path,
        default=DEFAULT_OUTPUT_DIR / "request_log",
        help="the server's log folder or one .sqlite file (default: %(default)s)",
    )
    data.add_argument(
        "--outcomes",
        type=Path,
        required=True,
        help="outcomes: a prepared CSV (complaint_id, consumer_disputed) or a raw CFPB export",
    )
    data.add_argument(
        "--model-config",
        type=Path,
        help="TF Serving's model config the server reads: which version each label names, and "
        "where each version's decision_threshold.json is (default: from the log)",
    )
    data.add_argument("--rollout-file", type=Path, help="the server's --rollout_file")
    data.add_argument("--control", default=STABLE, help="the label judged against (%(default)s)")
    data.add_argument(
        "--candidate", help="the label on trial (default: the canary, else the shadow)"
    )
    data.add_argument("--model-name", help="the model (default: the rollout's or the log's)")
    data.add_argument("--since", default="all", help="start: duration, ISO time or 'all' (all)")
    data.add_argument("--until", help="end (exclusive), an ISO time (default: now)")
    add_rule_arguments(parser.add_argument_group("the decision rule"))
    output = parser.add_argument_group("output (the text report always goes to stdout)")
    output.add_argument("--json", type=Path, help="write the report as JSON here")
    output.add_argument("--html", type=Path, help="write a self-contained HTML page here")
    return parser


def add_rule_arguments(rule) -> None:
    """The decision rule's flags (python -m monitoring.rollout auto has them too)."""
    defaults = Rule()
    add_number(
        rule,
        "--max-auc-drop",
        bounds=fraction("an AUC difference"),
        default=defaults.max_auc_drop,
        help="how much lower than control the candidate's AUC may be and still be promoted: "
        "promote when the whole 95%% interval of the difference is above minus this, roll back "
        "when it is all below (default: %(default)s)",
    )
    add_number(
        rule,
        "--min-outcomes",
        bounds=count(10, meaning="outcomes"),
        default=defaults.min_outcomes,
        help="outcomes behind a comparison (and in each arm) before it can decide "
        "(default: %(default)s)",
    )
    add_number(
        rule,
        "--resamples",
        bounds=count(100, 100_000),
        default=defaults.resamples,
        help="bootstrap resamples behind every interval (default: %(default)s)",
    )
    add_number(rule, "--seed", bounds=SEED, default=0, help="seed of the resamples (default: 0)")


def _threshold(state: ServingState | None, version: int) -> tuple[float, str] | None:
    if state is None:
        return None
    path = state.base_path / str(version) / THRESHOLD_FILE
    try:
        found = float(json.loads(path.read_text(encoding="utf-8"))["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found, THRESHOLD_FILE


def _version(rows: list[Logged], labels: dict[str, int], label: str) -> int | None:
    """A label's version: the model config's, else the newest logged row of that arm's."""
    if label in labels:
        return labels[label]
    return next((r.version for r in reversed(rows) if r.arm == label), None)


def resolve(rows: list[Logged], state: ServingState | None, args) -> tuple[str, dict, dict]:
    """The model, and the control's and candidate's {label, version}."""
    names = Counter(r.model_name for r in rows)
    model = args.model_name or (state.model if state else names.most_common(1)[0][0])
    if model not in names:
        raise ABTestError(f"no request to model {model!r} in the log (it has {', '.join(names)})")
    labels = state.labels if state else {}
    arms = Counter(r.arm for r in rows if r.model_name == model and r.arm)
    candidate = args.candidate or (state.candidate[0] if state and state.candidate else None)
    candidate = candidate or next((a for a, _ in arms.most_common() if a != args.control), None)
    control_version = _version(rows, labels, args.control)
    if control_version is None or args.control not in arms:
        raise ABTestError(
            f"no request was served by the control {args.control!r} in the log (its arms: "
            f"{', '.join(f'{a} {n}' for a, n in arms.most_common()) or 'none'}): a log from "
            "before the rollout, or pass --control"
        )
    if candidate is None:
        raise ABTestError(
            f"no candidate: the log has only the control's arm {args.control!r}; pass "
            "--candidate, or --model-config and --rollout-file of the rollout in force"
        )
    candidate_version = _version(rows, labels, candidate)
    if candidate_version is None:
        raise ABTestError(f"the candidate {candidate!r} names no version in the log or config")
    if candidate_version == control_version:
        raise ABTestError(
            f"{args.control!r} and {candidate!r} both name version {control_version}: "
            "nothing to compare"
        )
    control = {"label": args.control, "version": control_version}
    return model, control, {"label": candidate, "version": candidate_version}


def split(rows: list[Logged]) -> list[Logged]:
    return [r for r in rows if r.assignment == "split"]


def build_report(args) -> dict:
    started = time.perf_counter()
    since, until = window_bounds(args)
    state = None
    if args.model_config is not None:
        rollout = args.rollout_file or args.model_config.parent / "rollout.json"
        try:
            state = read_state(args.model_config, Path(rollout), args.model_name)
        except ServingChangeError as error:
            raise ABTestError(str(error)) from None
    log = read_log(args.request_log, since, until)
    outcomes = read_labels(args.outcomes)
    matched = check_matches(log, outcomes)
    model, control, candidate = resolve(log.rows, state, args)
    rows = [r for r in log.rows if r.model_name == model]
    compared = [r for r in rows if r.assignment != "explicit"]  # a client's choice is no draw
    rule = Rule(args.max_auc_drop, args.min_outcomes, args.resamples, args.seed)
    labels = outcomes.labels

    def arm(label, version, shadow) -> tuple[Arm, list[Logged]]:
        """A served arm: its label's rows of its version (the same version under another
        label, e.g. as canary before its promotion, is another arm). A shadow: every copy its
        version scored, named by the shadow's own label."""
        chosen = [
            r for r in compared
            if r.version == version and r.shadow == shadow and (shadow or r.arm == label)
        ]  # fmt: skip
        if shadow and (logged := Counter(r.arm for r in chosen if r.arm).most_common(1)):
            label = logged[0][0]
        found = ab_stats.describe_arm(
            Arm(label, version, shadow), chosen, labels, _threshold(state, version), rule
        )
        return found, chosen

    control_arm, control_rows = arm(control["label"], control["version"], False)
    served, served_rows = arm(candidate["label"], candidate["version"], False)
    shadowed, shadow_rows = arm(candidate["label"], candidate["version"], True)
    candidates = [a for a in (served, shadowed) if a.requests]
    primary = [r for r in compared if not r.shadow]
    versions = (control["version"], candidate["version"])
    comparisons = {
        "paired": ab_stats.paired(
            primary, [r for r in compared if r.shadow], *versions, labels, rule
        ),  # fmt: skip
        # Only split requests were drawn at random between the two: a default one (before the
        # rollout) or one that named its label would compare other traffic.
        "unpaired": ab_stats.unpaired(split(control_rows), split(served_rows), labels, rule)
        if served.requests
        else None,
    }
    deciding = comparisons["paired"] or comparisons["unpaired"]
    verdict = ab_stats.decide(deciding, control_arm, candidates or [served], rule)
    known = {id(r) for r in [*control_rows, *served_rows, *shadow_rows]}
    others = Counter(
        f"{r.arm or '(no label)'} v{r.version}{' shadow' if r.shadow else ''}"
        for r in compared
        if id(r) not in known
    )
    report = {
        "format": "cfpb-abtest/1",
        "model": model,
        "control": control,
        "candidate": candidate,
        "decision": asdict(verdict),
        "arms": [
            {**asdict(a), "name": a.name, "role": role}
            for a, role in (
                (control_arm, "control"),
                (served, "candidate"),
                (shadowed, "candidate"),
            )  # fmt: skip
            if a.requests or role == "control"
        ],
        "comparisons": {k: asdict(v) if v else None for k, v in comparisons.items()},
        "explicit_requests": len(rows) - len(compared),
        "other_arms": dict(others),
        "window": {"since": since, "until": until, "rows": len(rows)},
        "log": log.evidence(),
        "skipped_log_files": log.skipped,
        "outcomes": {
            "path": outcomes.path,
            "sha256": outcomes.sha256,
            "kind": outcomes.kind,
            "labels": len(outcomes.labels),
            "matched_complaints": matched,
        },
        "rule": asdict(rule),
        "serving": state.as_json() if state else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return _finite(report)


def _finite(value):
    """nan and inf as null: JSON has no such numbers, and a reader should see 'undefined'."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        report = build_report(args)
        if args.json:
            with atomic_write(args.json) as out:
                json.dump(report, out, indent=2)
        if args.html:
            with atomic_write(args.html) as out:
                out.write(ab_views.html(report))
    except (ABTestError, MonitorError, OSError) as error:
        print(f"abtest: {error}", file=sys.stderr)
        return CANNOT_JUDGE
    print(ab_views.text(report))
    return EXIT_CODES[report["decision"]["decision"]]


if __name__ == "__main__":
    sys.exit(main())
