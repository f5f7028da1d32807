"""Turn served requests and their later outcomes into the next training span.

    python -m feedback --request-log outputs/request_log --outcomes OUTCOMES.csv \\
        --data-dir DIR

Whether a consumer disputes the company's answer is known weeks after the complaint, so after
its prediction. This joins the requests the model server logged (serving/request_log.py) with
those outcomes by complaint_id and writes DIR/span-N/complaints.csv in the canonical columns,
with a manifest beside it: the log files and row ranges read, the outcomes file and its
SHA-256, and what was joined, left waiting and skipped. The pipeline reads it with
--input-pattern 'span-{SPAN}/*.csv'; ExampleGen records the manifest on its artifact.

A complaint already in a span is never written again, so a rerun is a no-op. Requests without
a complaint_id, or without an outcome yet, stay in the log for a later run. An outcome that
contradicts another (in the file, or in a span) stops the run. Never trained on, counted and
named instead: a request with no value for any feature the model reads (sent under other names,
e.g. the CFPB export's), and a complaint id data.prepare would drop as malformed ("abc").
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from cli.bounds import add_number, count
from data import spans
from feedback.sources import (
    LOCK_FILE,  # noqa: F401 (tests and users find the lock here)
    NAMED_IDS,
    FeedbackError,
    LogFile,
    Outcomes,
    Refused,
    joinable,
    locked,
    log_files,
    logged_features_setting,
    open_log,
    read_outcomes,
    spanned_labels,
    writable_problem,
)
from models import features
from pipeline.config import is_uri

OUTCOME_FIELDS = (
    "path",
    "sha256",
    "kind",
    "rows",
    "without_complaint_id",
    "without_label",
    "unreadable",
)


@dataclass
class Counts:
    """Request rows by fate; every logged request is counted once."""

    joined: int = 0
    duplicate_requests: int = 0  # the same complaint asked again: its latest request is kept
    already_in_spans: int = 0
    waiting_for_outcome: int = 0
    without_complaint_id: int = 0
    without_model_features: int = 0  # an outcome, but nothing the model could learn from
    malformed_complaint_id: int = 0  # an id data.prepare drops: never joined
    outcomes_without_request: int = 0


# Counts of refused requests, each named in the manifest and the summary, with why.
REFUSALS = {
    "without_model_features": "without a value for any feature the model reads",
    "malformed_complaint_id": "with a malformed complaint id",
}
# Where the model's features are in a canonical row: one of them must have a value.
MODEL_COLUMNS = tuple(features.CANONICAL_COLUMNS.index(k) for k in features.MODEL_INPUT_KEYS)


@dataclass
class Result:
    span: int | None
    folder: Path | None
    counts: Counts
    log: list[LogFile] = field(default_factory=list)
    refused: dict[str, Refused] = field(default_factory=dict)
    outcomes_malformed: Refused = field(default_factory=Refused)  # outcome rows never joined
    unusable: str | None = None  # why nothing was written when all input was refused: exit 2


def read_requests(
    files: list[Path],
    outcomes: Outcomes,
    known: dict[str, str],
    counts: Counts,
    refused: dict[str, Refused],
) -> tuple[dict[str, tuple], list[LogFile], set[str]]:
    """{complaint_id: (received_at, file, row, canonical row, model version)} of the latest
    request with the model's features per complaint that has an outcome and is not in a span
    yet; the log's extents; and every complaint id that matched an outcome."""
    latest: dict[str, tuple] = {}
    matched: set[str] = set()
    extents = []
    for number, path in enumerate(files):
        if not path.exists():  # rotated away by the server since the folder was listed
            print(f"warning: {path} is gone (the server rotated its log)", file=sys.stderr)
            continue
        connection = open_log(path)
        try:
            connection.execute("BEGIN")  # one snapshot: the extent and the rows agree
            extent = LogFile.read(connection, path)
            extents.append(extent)
            counts.without_complaint_id += extent.without_complaint_id
            joinable(connection, outcomes, known)
            counts.already_in_spans += connection.execute(
                "SELECT COUNT(*) FROM served p JOIN temp.spanned s "
                "ON cid(p.complaint_id) = s.complaint_id"
            ).fetchone()[0]
            for (raw_id,) in connection.execute(
                "SELECT complaint_id FROM served WHERE malformed_id(complaint_id) ORDER BY id"
            ):
                refused["malformed_complaint_id"].add(str(raw_id).strip())
            counts.waiting_for_outcome += connection.execute(
                "SELECT COUNT(*) FROM served WHERE cid(complaint_id) IS NOT NULL AND "
                "cid(complaint_id) NOT IN (SELECT complaint_id FROM temp.outcome) AND "
                "cid(complaint_id) NOT IN (SELECT complaint_id FROM temp.spanned)"
            ).fetchone()[0]
            rows = connection.execute(
                "SELECT o.complaint_id, received_at, id, features, model_version FROM "
                "served p JOIN temp.outcome o ON cid(p.complaint_id) = o.complaint_id "
                "ORDER BY id"
            )
            for complaint_id, received_at, row, logged, version in rows:
                matched.add(complaint_id)
                values = canonical_row(complaint_id, logged, outcomes)
                if not any(values[at].strip() for at in MODEL_COLUMNS):
                    refused["without_model_features"].add(complaint_id)
                    continue  # an earlier request of it with features may still be used
                request = (received_at, number, row, values, version)
                earlier = latest.get(complaint_id)
                if earlier is not None:
                    counts.duplicate_requests += 1
                if earlier is None or request[:3] > earlier[:3]:
                    latest[complaint_id] = request
        finally:
            connection.close()
    if not any(extent.requests for extent in extents):
        raise FeedbackError(f"the request log ({', '.join(map(str, files))}) holds no requests")
    for name, named in refused.items():
        setattr(counts, name, named.total)
    return latest, extents, matched


def unusable(counts: Counts, refused: dict[str, Refused]) -> str | None:
    """Why nothing can be written when every request this run could use was refused; None when
    nothing was refused, or the run found only complaints already in spans (a rerun)."""
    if counts.joined or counts.already_in_spans:
        return None
    featureless = refused["without_model_features"]
    if featureless.total:
        return (
            f"none of the {featureless.total:,} requests with an outcome has a value for any "
            f"feature the model reads (complaint ids {featureless.names()}): they were sent "
            "under other names (e.g. the CFPB export's) or logged without them; no span written"
        )
    malformed = refused["malformed_complaint_id"]
    if malformed.total and not counts.waiting_for_outcome:
        return (
            f"every complaint id in the request log is malformed ({malformed.total:,} requests: "
            f"{malformed.names()}), so none can be joined; send the CFPB's numeric Complaint ID; "
            "no span written"
        )
    return None


def canonical_row(complaint_id: str, logged: str, outcomes: Outcomes) -> list:
    """A prepared-CSV row (CANONICAL_COLUMNS): each column as the server received it, else
    from the outcomes file when the log did not keep it, else ""; the label from the outcomes."""
    values = {**outcomes.features.get(complaint_id, {}), **orjson.loads(logged)}
    label = outcomes.labels[complaint_id]
    values[features.ID_KEY], values[features.LABEL_KEY] = complaint_id, label
    row = []
    for column in features.CANONICAL_COLUMNS:
        value = values.get(column, "")
        if isinstance(value, list):  # logged as a list only when several values were sent
            value = value[0] if value else ""
        row.append("" if value is None else str(value).replace("\x00", ""))  # csv refuses NUL
    return row


def run_feedback(
    request_log: Path, outcomes_path: Path, data_dir: str | Path, span: int | None = None
) -> Result:
    if is_uri(str(data_dir)):  # before Path() turns gs://b into gs:/b, a local folder
        raise FeedbackError(f"--data-dir {data_dir}: write spans to a local folder, then copy it")
    data_dir = Path(data_dir)
    if span is not None and span < 1:
        raise FeedbackError(f"--span {span}: span numbers start at 1")
    files = log_files(request_log)
    # A log kept without some features (--log_features=no_text or none): take what it lacks
    # from the outcomes file when that has them (a full prepared CSV or a CFPB export).
    partial = any(logged_features_setting(path) != "all" for path in files)
    outcomes = read_outcomes(outcomes_path, keep_features=partial)
    problem = writable_problem(data_dir)  # creates a missing data dir, once inputs are good
    if problem:
        raise FeedbackError(problem)
    with locked(data_dir):
        existing = spans.span_folders(data_dir)
        if span is not None and span in existing:
            raise FeedbackError(f"{existing[span]} already exists; feedback never rewrites a span")
        if span is not None and span < max(existing, default=0):
            raise FeedbackError(
                f"--span {span} is older than span-{max(existing)}: the pipeline would never "
                "read it; leave --span out to take the next number"
            )
        counts = Counts()
        refused = {name: Refused() for name in REFUSALS}
        known = spanned_labels(data_dir, outcomes)
        latest, extents, matched = read_requests(files, outcomes, known, counts, refused)
        counts.joined = len(latest)
        counts.outcomes_without_request = sum(
            1 for cid in outcomes.labels if cid not in known and cid not in matched
        )
        if not latest:
            why = unusable(counts, refused)
            return Result(
                None, None, counts, extents, refused, outcomes.malformed_complaint_id, why
            )
        span = span if span is not None else max(existing, default=0) + 1
        ordered = sorted(latest.items(), key=lambda item: item[1][:3])
        rows = [req[3] for _, req in ordered]
        manifest = {
            "format": spans.FEEDBACK_FORMAT,
            "span": span,
            "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            "request_log": {
                "files": [asdict(extent) for extent in extents],
                "joined_received_at": [ordered[0][1][0], ordered[-1][1][0]],
                "model_versions": sorted({req[4] for _, req in ordered}),
            },
            "features": "as served, missing columns from the outcomes file"
            if partial
            else "as served",
            "outcomes": {
                **{name: getattr(outcomes, name) for name in OUTCOME_FIELDS},  # not the labels
                "malformed_complaint_id": asdict(outcomes.malformed_complaint_id),
            },
            "counts": asdict(counts),
            "refused": {name: asdict(named) for name, named in refused.items()},
        }
        if (data_dir / f"span-{span}").exists():
            raise FeedbackError(f"span-{span} appeared meanwhile; feedback never rewrites a span")
        folder = spans.write_span(data_dir, span, features.CANONICAL_COLUMNS, rows, manifest)
        return Result(span, folder, counts, extents, refused, outcomes.malformed_complaint_id)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m feedback",
        description=__doc__.split("\n\n", 2)[2].split("\n\n")[0].replace("\n", " "),
        epilog="Exit codes: 0 a span written, or nothing new to write (a rerun: what joins is in "
        "a span already, or still waits for its outcome); 2 bad input (missing, empty or damaged "
        "log; outcomes without complaint ids or with contradicting labels; a data dir that "
        "cannot be written; --span that exists; every request with an outcome lacking all the "
        "model's features, or every logged complaint id malformed), with nothing written. "
        "Requests without the model's features or with a malformed complaint id (one "
        "data.prepare drops, e.g. abc) are never written: counted, and their first "
        f"{NAMED_IDS} ids named, in the summary and the span's manifest.",
    )
    parser.add_argument(
        "--request-log",
        type=Path,
        required=True,
        help="the server's request log "
        "folder (--request_log_dir, default outputs/request_log) or one .sqlite file",
    )
    parser.add_argument(
        "--outcomes",
        type=Path,
        required=True,
        help="outcomes: a prepared CSV (complaint_id, consumer_disputed 1/0) or a raw CFPB export",
    )
    parser.add_argument(
        "--data-dir",
        required=True,
        help="the pipeline's data folder "
        "of span-N folders; the new span goes to DIR/span-<newest+1>",
    )
    add_number(
        parser,
        "--span",
        bounds=count(1, meaning="a span number"),
        help="write this span number instead (must not exist)",
    )
    return parser


def _many(count: int, thing: str) -> str:
    return f"{count:,} {thing}{'' if count == 1 else 's'}"


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        result = run_feedback(args.request_log, args.outcomes, args.data_dir, args.span)
    except FeedbackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = asdict(result.counts)
    print(", ".join(f"{name.replace('_', ' ')}: {value:,}" for name, value in counts.items()))
    for name, why in REFUSALS.items():
        named = result.refused.get(name)
        if named is not None and named.total:
            print(f"left out {_many(named.total, 'request')} {why}: {named.names()}")
    if result.outcomes_malformed.total:
        print(
            f"ignored {_many(result.outcomes_malformed.total, 'outcome row')} with a malformed "
            f"complaint id: {result.outcomes_malformed.names()}"
        )
    if result.unusable is not None:
        print(f"error: {result.unusable}", file=sys.stderr)
        return 2
    if result.folder is None:
        print(
            "nothing new to write: no usable request with an outcome that is not in a span already"
        )
    else:
        print(
            f"wrote {result.folder} ({result.counts.joined:,} rows, manifest "
            f"{spans.FEEDBACK_MANIFEST}) in {time.perf_counter() - started:.1f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
