"""The curated schema the pipeline validates data against, and proposing changes to it.

    python -m lineage.schema_proposal propose [--data-dir DIR | --output-dir DIR] [--write]

`propose` lists what the data would change in the checked-in schema and prints the updated
schema as a diff. With --output-dir it builds on the latest run there: the difference
between its SchemaGen schema and the curated one (lineage/schema_diff.py), nothing inferred
again. With --data-dir it computes statistics of a data folder and asks TFDV. A person
reviews it; --write replaces pipeline/schema/schema.pbtxt with it.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import warnings
from pathlib import Path

from pipeline.config import BUNDLED_DATA_DIR, SCHEMA_FILE
from pipeline.metadata.artifacts import load_schema, load_schema_file

# Categorical features whose values are a fixed list on the CFPB form (checked as domains).
STABLE_DOMAINS = ("product", "submitted_via", "timely_response", "company_response")
# L-infinity distance between value frequencies of consecutive data that stops a run.
DRIFT_THRESHOLDS = {"product": 0.15, "issue": 0.15}


def statistics_of(data_dir: str):
    """TFDV statistics of every prepared CSV in a folder, read as the pipeline reads it."""
    import pandas as pd
    import tensorflow_data_validation as tfdv

    from models import features
    from pipeline.components.example_gen import record_batches

    paths = sorted(Path(data_dir).glob("*.csv"))
    if not paths:
        raise SystemExit(f"error: {data_dir} holds no .csv file")
    frame = pd.concat(
        [batch.to_pandas() for path in paths for batch in record_batches(str(path))],
        ignore_index=True,
    )
    frame = frame.reindex(columns=[*features.RAW_FEATURE_KEYS, features.LABEL_KEY])
    frame[features.LABEL_KEY] = pd.to_numeric(frame[features.LABEL_KEY], errors="coerce")
    return tfdv.generate_statistics_from_dataframe(frame)


def curate(schema, statistics=None):
    """The project's rules on top of what TFDV infers.

    Every raw column is required, one value per example; the label is 0 or 1; only the
    stable categoricals keep a value domain; product and issue get drift comparators.
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    from models import features

    if statistics is not None:
        fresh = tfdv.infer_schema(statistics, infer_feature_shape=True)
        for domain in fresh.string_domain:
            if domain.name in STABLE_DOMAINS and not any(
                d.name == domain.name for d in schema.string_domain
            ):
                schema.string_domain.append(domain)
    keep = [d for d in schema.string_domain if d.name in STABLE_DOMAINS]
    del schema.string_domain[:]
    schema.string_domain.extend(keep)
    for feature in schema.feature:
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        if feature.name == features.LABEL_KEY:
            feature.type = schema_pb2.INT
            feature.int_domain.min, feature.int_domain.max = 0, 1
            feature.int_domain.is_categorical = True
            continue
        feature.type = schema_pb2.BYTES
        if feature.name in STABLE_DOMAINS:
            feature.domain = feature.name
        else:
            feature.ClearField("domain")
        if feature.name in DRIFT_THRESHOLDS:
            feature.drift_comparator.infinity_norm.threshold = DRIFT_THRESHOLDS[feature.name]
    return schema


def as_text(schema) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(schema)


def propose(data_dir: str, current_path: Path = SCHEMA_FILE) -> tuple[list[str], str, str]:
    """(anomalies against the current schema, current text, proposed text)."""
    import tensorflow_data_validation as tfdv

    statistics = statistics_of(data_dir)
    if not current_path.is_file():
        proposed = curate(tfdv.infer_schema(statistics, infer_feature_shape=True), statistics)
        return ["no schema yet"], "", as_text(proposed)
    current = load_schema_file(str(current_path))
    anomalies = tfdv.validate_statistics(statistics, current)
    problems = [
        f"{name}: {info.short_description}: {info.description}"
        for name, info in sorted(anomalies.anomaly_info.items())
    ]
    proposed = curate(tfdv.update_schema(current, statistics), statistics)  # a new proto
    return problems, as_text(current), as_text(proposed)


def propose_from_run(output_dir: str, current_path: Path) -> tuple[list[str], str, str]:
    """(the latest run's schema difference, current text, proposed text) from its MLMD store."""
    from lineage import schema_diff
    from pipeline.config import PipelineConfig
    from pipeline.metadata import store

    config = PipelineConfig(output_dir=output_dir)
    if not config.metadata_path.is_file():
        raise SystemExit(f"error: {output_dir} holds no pipeline run (no {config.metadata_path})")
    mlmd_store = store.connect(config.metadata_connection_config())
    runs = store.run_ids(mlmd_store, config.pipeline_name)
    inferred_uri = schema_diff.run_schema_uris(mlmd_store, runs[-1])[0] if runs else None
    if inferred_uri is None:
        raise SystemExit(f"error: the latest run in {output_dir} has no SchemaGen output")
    current = load_schema_file(str(current_path))
    inferred = load_schema(inferred_uri)
    changes = schema_diff.schema_difference(inferred, current)
    proposed = curate(schema_diff.apply_difference(current, inferred, changes))
    return [str(c) for c in changes], as_text(current), as_text(proposed)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lineage.schema_proposal", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    proposal = commands.add_parser("propose", help="diff of the schema a data folder needs")
    proposal.add_argument(
        "--data-dir", default=str(BUNDLED_DATA_DIR), help="prepared data (default: %(default)s)"
    )
    proposal.add_argument(
        "--output-dir",
        help="build on the latest run in this pipeline output folder (its SchemaGen schema) "
        "instead of reading --data-dir",
    )
    proposal.add_argument(
        "--schema-file",
        type=Path,
        default=SCHEMA_FILE,
        help="the curated schema, as given to the runners (default: %(default)s)",
    )
    proposal.add_argument("--write", action="store_true", help="replace the schema file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")

    schema_file = args.schema_file
    if args.output_dir:
        problems, current, proposed = propose_from_run(args.output_dir, schema_file)
    else:
        problems, current, proposed = propose(args.data_dir, schema_file)
    print(f"Against {schema_file}:")
    print("\n".join(f"  {p}" for p in problems) or "  no anomalies")
    changes = list(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            proposed.splitlines(keepends=True),
            "schema.pbtxt (checked in)",
            "schema.pbtxt (proposed)",
        )
    )
    print("".join(changes) or "The proposed schema is the checked-in one.")
    if args.write and changes:
        schema_file.parent.mkdir(parents=True, exist_ok=True)
        from cli.atomic import atomic_write

        with atomic_write(schema_file) as handle:
            handle.write(proposed)
        print(f"Wrote {schema_file}; review and commit it. The next run uses it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
