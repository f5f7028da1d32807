"""What is wrong with a config, found before anything heavy starts (no TensorFlow import).

Every runner checks its flags with these and stops with one line per problem and exit code 2:
a run that can never succeed (an impossible threshold, an output folder it cannot write, a
database it cannot reach, unreadable data) should not first spend minutes importing and
computing. The local runners check the data after taking their lock (pipeline/run.py), the
Kubeflow runner only what the spec is built from, the Airflow DAG file the settings.
"""

from __future__ import annotations

import fnmatch
import os
import re
import socket
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as arrow_csv

from data.checks import prepared_file_problem
from models.features import LABEL_KEY, integer_label
from pipeline.config import SPAN_TOKEN, PipelineConfig, is_uri

MYSQL_CONNECT_SECONDS = 3.0


def span_files(config: PipelineConfig) -> dict[int, list[Path]]:
    """{span: its files} of the local files matching a --input-pattern with {SPAN}."""
    data_dir = Path(config.data_dir)
    span_of = re.compile(
        fnmatch.translate(config.input_pattern).replace(re.escape(SPAN_TOKEN), r"([0-9]+)")
    )
    found: dict[int, list[Path]] = {}
    for path in sorted(data_dir.glob(config.input_pattern.replace(SPAN_TOKEN, "*"))):
        match = span_of.match(str(path.relative_to(data_dir)))
        if match:
            found.setdefault(int(match.group(1)), []).append(path)
    return dict(sorted(found.items()))


def input_files(config: PipelineConfig) -> list[Path]:
    """The local files a run reads: those matching --input-pattern, of one span (--span, else
    the newest) when the pattern has {SPAN}."""
    if SPAN_TOKEN not in config.input_pattern:
        return sorted(Path(config.data_dir).glob(config.input_pattern))
    spans = span_files(config)
    return spans.get(config.span or max(spans, default=0), [])


def data_problems(config: PipelineConfig) -> list[str]:
    problems = []
    if not is_uri(config.data_dir):  # remote data is checked where it is read
        data_dir = Path(config.data_dir)
        files = input_files(config) if data_dir.is_dir() else []
        if not data_dir.is_dir():
            problems.append(f"--data-dir {config.data_dir} is not a folder")
        elif not files and config.span:
            problems.append(
                f"--span {config.span}: no file under {config.data_dir} matches "
                + config.input_pattern.replace(SPAN_TOKEN, str(config.span))
            )
        elif not files:
            problems.append(
                f"--data-dir {config.data_dir} holds no file matching {config.input_pattern}; "
                "prepare a CFPB export with: python -m data.prepare EXPORT -o DIR/complaints.csv"
            )
        else:
            file_problems = list(filter(None, map(prepared_file_problem, map(str, files))))
            problems += file_problems or filter(None, [label_type_problem(files)])
    if not is_uri(config.schema_file) and not Path(config.schema_file).is_file():
        problems.append(f"--schema-file {config.schema_file} does not exist")
    return problems


def _first_nul_line(path: Path) -> int | None:
    """The line of the file's first NUL byte, if any: no CSV reader here would name it."""
    with open(path, "rb") as handle:
        line = 1
        for chunk in iter(lambda: handle.read(4 << 20), b""):
            if (at := chunk.find(b"\x00")) >= 0:
                return line + chunk.count(b"\n", 0, at)
            line += chunk.count(b"\n")
    return None


def _first_label_word(path: Path) -> tuple[bool, tuple[int, str] | None]:
    """Whether the file has integer labels, and the row and text of its first word label.

    pyarrow reads only the label column: a Python csv reader took 3 s at 422k rows, on every
    run, cached ones too.
    """
    options = {
        "parse_options": arrow_csv.ParseOptions(newlines_in_values=True),
        "convert_options": arrow_csv.ConvertOptions(
            include_columns=[LABEL_KEY],
            include_missing_columns=True,
            column_types={LABEL_KEY: pa.string()},
        ),
    }
    has_integers, word, first_row = False, None, 2  # row 2: the first after the header
    with arrow_csv.open_csv(path, **options) as reader:
        for batch in reader:
            labels = pc.utf8_trim_whitespace(batch.column(0))
            distinct = [text for text in pc.unique(labels).to_pylist() if text]
            words = [text for text in distinct if integer_label(text) is None]
            has_integers |= len(words) < len(distinct)
            if words and word is None:
                row = min(pc.index(labels, text).as_py() for text in words)
                word = (first_row + row, labels[row].as_py())
            if has_integers and word:
                break  # mixed within the file: no need to read on
            first_row += batch.num_rows
    return has_integers, word


def label_type_problem(files: list[Path]) -> str | None:
    """Labels must be integers in every file, or words in every file.

    Integer labels in one file and words ("Yes") in another give examples whose label feature
    has two types, and StatisticsGen fails on them with an internal error. All-word labels are
    left to the data gate, which names them against the schema.
    """
    first_word: dict[Path, tuple[int, str]] = {}
    with_integers: list[Path] = []
    for path in files:
        if (line := _first_nul_line(path)) is not None:
            return f"{path}, line {line}: not a readable CSV (it holds a NUL byte)"
        try:
            has_integers, word = _first_label_word(path)
        except pa.ArrowInvalid as error:  # e.g. a row with too many fields
            return f"{path}: not a readable CSV ({error})"
        if has_integers:
            with_integers.append(path)
        if word:
            first_word[path] = word
    if not first_word or not with_integers:
        return None
    path, (row, word) = next(iter(first_word.items()))
    return (
        f"{path}, row {row}: {LABEL_KEY} is {word!r}, while {with_integers[0]} has 0/1 "
        "labels; every file needs 0/1 labels (prepare raw exports with python -m data.prepare)"
    )


def setting_problems(config: PipelineConfig) -> list[str]:
    """Settings under which no run could ever train, evaluate or bless a model."""
    problems = []
    for name in ("train_steps", "eval_steps", "tuner_trials", "tuner_train_steps"):
        if getattr(config, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.0 <= config.min_auc <= 1.0:  # also refuses nan
        problems.append(f"--min-auc must be between 0 and 1 (an AUC), not {config.min_auc}")
    if not 0.0 <= config.max_auc_drop <= 1.0:
        problems.append(
            f"--max-auc-drop must be between 0 and 1 (an AUC difference), not "
            f"{config.max_auc_drop}; 0 means no worse than the last blessed model"
        )
    if config.eval_split_buckets < 1:
        problems.append("--eval-split-buckets must be at least 1 (eval gets that many of 3+N)")
    if config.span < 0 or (config.span and SPAN_TOKEN not in config.input_pattern):
        problems.append(f"--span needs a positive number and {SPAN_TOKEN} in --input-pattern")
    if config.direct_num_workers < 0:
        problems.append("--direct_num_workers must be 0 (one per core) or more")
    return problems


def output_problems(config: PipelineConfig) -> list[str]:
    """A local output folder must be creatable and writable (remote ones are checked there)."""
    if is_uri(config.output_dir):
        return []
    try:
        os.makedirs(config.output_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=config.output_dir):
            pass
    except OSError as error:
        return [f"--output-dir {config.output_dir} is not writable: {error.strerror or error}"]
    return []


def store_problems(config: PipelineConfig) -> list[str]:
    """MLMD on MySQL: the server must answer on its port (the password is checked by MLMD)."""
    if not config.mysql_host:
        return []
    if not 0 < config.mysql_port < 65536:
        return [f"--mysql-port {config.mysql_port} is not a TCP port"]
    try:
        socket.create_connection(
            (config.mysql_host, config.mysql_port), timeout=MYSQL_CONNECT_SECONDS
        ).close()
    except OSError as error:
        return [
            f"cannot reach MySQL for MLMD at {config.mysql_host}:{config.mysql_port} "
            f"({error.strerror or error}); start the server or fix --mysql-host/--mysql-port"
        ]
    return []
