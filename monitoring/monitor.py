"""python -m monitoring: is live traffic still what the served model was trained on?

Reads a window of the server's request log (by time and/or count), finds through MLMD the
pushed model that served it, and checks the window against that model's training statistics,
curated schema and test split: TFDV skew per feature (L-infinity for categories), values
outside the schema's domains and missing features, and the shift of the prediction
distribution against the model's own predictions on its test split (PSI). Prints a text
report, optionally writes a self-contained HTML page and JSON, and exits 0 (healthy),
1 (alert) or 2 (cannot judge: bad input, nothing to compare).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")  # dependencies' notices would bury the report

from cli.atomic import atomic_write  # noqa: E402
from cli.bounds import INT64_MAX, add_number, count  # noqa: E402
from monitoring import comparisons  # noqa: E402
from monitoring.comparisons import THRESHOLD_BOUNDS, MonitorError, Thresholds  # noqa: E402
from monitoring.window import (  # noqa: E402
    log_files,
    logged_features,
    read_window,
    select_model,
    window_bounds,
)
from pipeline.config import PipelineConfig, add_config_arguments  # noqa: E402

HEALTHY, ALERT, CANNOT_JUDGE = 0, 1, 2
DEFAULT_SINCE = "24h"
STORE_FIELDS = ("output_dir", "mysql_host", "mysql_port", "mysql_database", "mysql_user")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 healthy, 1 alert, 2 cannot judge (the reason in one line)",
    )
    window = parser.add_argument_group("window of the request log")
    window.add_argument(
        "--request-log",
        help="the log's folder (requests.sqlite and its rotated requests-*.sqlite) or one file "
        "(default: <output-dir>/request_log, where python -m serving writes it)",
    )
    window.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help="start: a duration back from --until (90m, 24h, 7d), an ISO time "
        "(2026-11-25T08:00Z), or 'all' (default: %(default)s)",
    )
    window.add_argument("--until", help="end (exclusive), an ISO time (default: now)")
    add_number(window, "--last", bounds=count(), help="only the newest N predictions of the window")
    window.add_argument("--model-name", help="model to watch (default: the newest row's)")
    add_number(
        window,
        "--model-version",
        bounds=count(1, INT64_MAX),
        help="version to watch (default: the newest row's)",
    )
    defaults = Thresholds()
    limits = parser.add_argument_group("thresholds (a skew_comparator in the schema wins)")
    for flag, name, meaning in (
        ("--skew-threshold", "skew_linf", "L-infinity skew of a category"),
        ("--prediction-psi-threshold", "prediction_psi", "PSI of predictions"),
        ("--min-rows", "min_rows", "fewest predictions worth judging"),
    ):
        default = getattr(defaults, name)
        add_number(
            limits,
            flag,
            bounds=THRESHOLD_BOUNDS[name],
            default=default,
            help=f"{meaning} (default: {default})",
        )
    output = parser.add_argument_group("output (the text report always goes to stdout)")
    output.add_argument("--html", type=Path, help="write a self-contained HTML page here")
    output.add_argument("--json", type=Path, help="write the report as JSON here")
    add_config_arguments(parser.add_argument_group("MLMD store (as given to the runner)"),
                         STORE_FIELDS)  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="tracebacks for failures")
    return parser


def open_store(args):
    from pipeline import preflight
    from pipeline.metadata.store import connect

    config = PipelineConfig(**{name: getattr(args, name) for name in STORE_FIELDS})
    if not config.mysql_host and not (
        config.metadata_path.is_file() and config.metadata_path.stat().st_size > 0
    ):
        raise MonitorError(
            f"no MLMD store at {config.metadata_path}: point --output-dir at the output folder "
            "of the pipeline that pushed the served model (or use --mysql-host)"
        )
    if problems := preflight.store_problems(config):  # a MySQL store that cannot answer
        raise MonitorError(problems[0])
    connection = config.metadata_connection_config()
    if connection.HasField("sqlite"):  # the monitor only reads
        connection.sqlite.connection_mode = connection.sqlite.READONLY
    try:
        return connect(connection)
    except Exception as error:  # noqa: BLE001 (MLMD raises its own status errors)
        raise MonitorError(f"cannot open the MLMD store: {error}") from None


def judge(baseline, rows: list[tuple], logged: set[str], thresholds: Thresholds, test_scores):
    """The comparisons of one model version's rows (as read_window returns them) and the
    alerts they raise; test_scores: the model's predictions on its test split, or None."""

    try:
        values = [json.loads(row[4]) for row in rows]
    except json.JSONDecodeError as error:
        raise MonitorError(f"the features of a logged row are not JSON: {error}") from None
    skews, anomalies, unseen = comparisons.check_features(baseline, values, logged, thresholds)
    scores = [row[6] for row in rows if row[6] is not None]
    shift = None
    if scores and test_scores is not None:
        shift = comparisons.prediction_shift(test_scores, scores, thresholds.prediction_psi)
    unknown: dict[str, int] = {}
    for row in rows:
        for feature in json.loads(row[5]) if row[5] else []:
            unknown[feature] = unknown.get(feature, 0) + 1
    missing = {
        feature: sum(1 for value in values if value.get(feature) in (None, []))
        for feature in sorted(logged)
    }
    alerts = [
        f"skew: {s.feature} {s.measure} {s.value:.3f} > {s.threshold:g}" for s in skews if s.alert
    ]
    alerts += [f"schema: {a.feature}: {a.description}" for a in anomalies]
    if shift is not None and shift.alert:
        alerts.append(f"prediction shift: PSI {shift.psi:.3f} > {shift.threshold:g}")
    return {
        "status": "alert" if alerts else "healthy",
        "alerts": alerts,
        "skew": [{**vars(s), "alert": s.alert} for s in skews],
        "anomalies": [vars(a) for a in anomalies],
        "unseen_values": {k: dict(list(v.items())[:5]) for k, v in unseen.items()},
        "unseen_rows": {k: sum(v.values()) for k, v in unseen.items()},
        "unknown_features": unknown,
        "missing": {k: v for k, v in missing.items() if v},
        "prediction": None if shift is None else {**vars(shift), "alert": shift.alert},
    }


def monitor(args) -> dict:
    """Everything read and compared; the report as a dict (nothing written yet)."""

    started = time.perf_counter()
    timings = {}
    thresholds = Thresholds(args.skew_threshold, args.prediction_psi_threshold, args.min_rows)
    since, until = window_bounds(args)
    location = Path(args.request_log or Path(args.output_dir) / "request_log")
    files = log_files(location)
    rows, settings, total = read_window(files, since, until, args.last)
    if not total:
        raise MonitorError(f"the request log at {location} holds no predictions yet")
    if not rows:
        raise MonitorError(
            f"no predictions from {since} to {until} in {location} ({total} in the log): "
            "widen --since (e.g. --since all) or check --until"
        )
    name, version, chosen, others = select_model(rows, args.model_name, args.model_version)
    if len(chosen) < thresholds.min_rows:
        raise MonitorError(
            f"only {len(chosen)} predictions of {name} version {version} in the window; at "
            f"least {thresholds.min_rows} are needed to judge: widen --since or lower --min-rows"
        )
    logged = logged_features(settings)
    timings["read log"] = time.perf_counter() - started

    store = open_store(args)
    mark = time.perf_counter()
    import tensorflow  # noqa: F401  (imported here to time it apart from the work)
    import tensorflow_data_validation  # noqa: F401

    timings["imports (TensorFlow, TFDV)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    baseline = comparisons.find_baseline(store, version)
    timings["baseline (MLMD, statistics, schema)"] = time.perf_counter() - mark
    test_scores = None
    if any(row[6] is not None for row in chosen):
        mark = time.perf_counter()
        test_scores = comparisons.test_predictions(baseline)
        timings["test split scored"] = time.perf_counter() - mark
    mark = time.perf_counter()
    judged = judge(baseline, chosen, logged, thresholds, test_scores)
    timings["comparisons (TFDV, PSI)"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    return {
        **judged,
        "model": {"name": name, "version": version},
        "window": {
            "since": since,
            "until": until,
            "last": args.last,
            "rows": len(chosen),
            "first": chosen[-1][1],
            "newest": chosen[0][1],
            "other_models": others,
            "log": [str(path) for path in files],
            "log_features": sorted(settings),
        },
        "baseline": baseline.sources,
        "thresholds": vars(thresholds),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if not args.verbose:  # one line on failure: TF's own C++ log would come first
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    logging.disable(logging.WARNING)  # TF and TFDV chatter; the report says what matters
    try:
        report = monitor(args)
        from monitoring import views

        page = views.html(report) if args.html else None
        if args.json:
            with atomic_write(args.json) as out:
                json.dump(report, out, indent=2)
        if page is not None:
            with atomic_write(args.html) as out:
                out.write(page)
    except (MonitorError, OSError) as error:
        print(f"monitor: {error}", file=sys.stderr)
        return CANNOT_JUDGE
    except Exception as error:  # noqa: BLE001 (one line for a scheduler, not a traceback)
        if args.verbose:
            raise
        print(f"monitor: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return CANNOT_JUDGE
    print(views.text(report))
    return ALERT if report["alerts"] else HEALTHY


if __name__ == "__main__":
    sys.exit(main())
